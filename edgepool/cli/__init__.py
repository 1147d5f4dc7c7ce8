"""The `edgepool` command line. Importing it must not import TensorFlow (tested)."""
