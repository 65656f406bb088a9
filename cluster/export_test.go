package cluster

// ExportedCollectives is collectives for the external MPI test.
var ExportedCollectives = collectives
