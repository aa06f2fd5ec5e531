"""Models: offline MediaPipe models converted to ONNX, rembg's family, any ONNX at a URI, random-weight
U²-Net."""
