"""File and tensor names the ONNX artifacts and everything built from them share (kept apart so a step's
code key covers only what it uses)."""
ONNX_FILE = "model.onnx"
CALIBRATION_FILE = "calibration.npy"
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"
