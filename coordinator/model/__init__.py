"""The model side: the zoo and user models, export to ONNX, test inputs and labelled data."""
