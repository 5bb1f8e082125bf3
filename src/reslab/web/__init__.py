"""The similarity-search web page: a FastAPI app over a `reslab.search.index.SearchIndex`."""
