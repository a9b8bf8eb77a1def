"""Built-in search spaces, shipped inside the package as automl.search_spaces."""
