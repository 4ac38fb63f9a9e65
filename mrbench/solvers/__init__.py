"""Built-in solvers, installed as `mrbench.solvers` and registered through entry points."""
