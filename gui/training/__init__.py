"""Training from the app: the ``python -m engine train`` process and the controller that wires it to the panel."""
