"""The page people use: a review in, the model's verdict out; feedback and the A/B view."""
