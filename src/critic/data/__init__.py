"""Data: sources of reviews, cleaning and tokenising, the vocabulary, splits and batches."""
