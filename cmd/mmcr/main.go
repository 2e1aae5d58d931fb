package main

import (
	_ "github.com/checkpoint-restore/go-criu/v7/crit"
	_ "github.com/checkpoint-restore/go-criu/v7/magic"
	_ "github.com/urfave/cli/v2"
	_ "golang.org/x/sys/unix"
	_ "google.golang.org/protobuf/proto"
)

func main() {}
