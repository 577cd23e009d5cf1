"""RLlib new-API-stack glue: the objective-term learner, its connector and the algorithm builder."""
