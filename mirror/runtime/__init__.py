"""Running a topology on one machine: a supervisor process, its state, and the CLI verbs."""
