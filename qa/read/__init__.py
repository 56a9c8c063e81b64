"""Read: which sentence and which words of the ranked passages answer the question, and whether
to answer at all (`reader.Reader`); the span model (`spans`) and the abstention signals (`signals`)."""
