module github.com/mmcr/mmcr

go 1.26.0

require (
	github.com/checkpoint-restore/go-criu/v7 v7.2.0
	golang.org/x/sys v0.50.0
	google.golang.org/protobuf v1.36.12
)
