package main

import "github.com/nri-cni/nri-cni/e2e/framework"

// runner is the framework.T of the benchmark. The framework calls Logf from
// the goroutines of a burst, which Program allows.
type runner = framework.Program
