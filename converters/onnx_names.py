"""File and tensor names the ONNX artifacts and everything built from them share (kept apart so a step's
code key covers only what it uses)."""
ONNX_FILE = "model.onnx"
CALIBRATION_FILE = "calibration.npy"
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"  # INPUT_NAME: models.api.Input's default name too


def graph_inputs(model_path) -> list[tuple[str, tuple[int, ...]]]:
    """(name, per-sample shape) of an ONNX graph's inputs, in order."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [(i.name, tuple(d.dim_value for d in i.type.tensor_type.shape.dim)[1:]) for i in graph.input]
