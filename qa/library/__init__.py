"""The library side: building and updating the index from sources (`build`), uploads, the
background reindex, watch mode, and bounded listings of what is indexed (`library.Library`)."""
