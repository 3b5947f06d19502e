package main

import (
	"fmt"
	"runtime"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func versionString() string {
	return fmt.Sprintf("strata %s (%s %s/%s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
