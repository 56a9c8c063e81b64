"""Search: find the passages that may answer a question (`searcher.Searcher`): dense and
lexical retrieval fused (`fusion`), the first of them reranked by a cross-encoder (`rerank`)."""
