//go:build !linux

package localcluster

import (
	"context"
	"errors"
	"runtime"
)

// realNode is the running real node's part of a Cluster; a real node runs on Linux only.
type realNode struct{}

// RealNodeSupported says why this machine cannot run a real node: it is not Linux.
func RealNodeSupported() error {
	return errors.New("a real node needs Linux (containerd, runc, cgroups and network namespaces); this is " + runtime.GOOS)
}

func (c *Cluster) prepareNode() error                                 { return RealNodeSupported() }
func (c *Cluster) startNode(context.Context, *tools, *pkiFiles) error { return RealNodeSupported() }
func (c *Cluster) waitNode(context.Context, *tools) error             { return RealNodeSupported() }
func (c *Cluster) stopNode() error                                    { return nil }
func (c *Cluster) LoadImages(context.Context, ...string) error        { return RealNodeSupported() }
func (c *Cluster) RegistryRequests() []string                         { return nil }
