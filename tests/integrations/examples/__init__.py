"""README examples run by the tests, and the helpers those framework tests share."""
