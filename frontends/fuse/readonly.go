//go:build !windows

package fuse

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
)

// Every call that would change the tree answers EROFS. The mount is also
// read-only for the kernel, which refuses most of these before they reach
// us; these cover the rest and any mount made without "ro".

// Setattr implements gofs.NodeSetattrer.
func (n *node) Setattr(context.Context, gofs.FileHandle, *gofuse.SetAttrIn, *gofuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

// Setxattr implements gofs.NodeSetxattrer.
func (n *node) Setxattr(context.Context, string, []byte, uint32) syscall.Errno { return syscall.EROFS }

// Removexattr implements gofs.NodeRemovexattrer.
func (n *node) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }

// Create implements gofs.NodeCreater.
func (n *node) Create(context.Context, string, uint32, uint32, *gofuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

// Mkdir implements gofs.NodeMkdirer.
func (n *node) Mkdir(context.Context, string, uint32, *gofuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

// Mknod implements gofs.NodeMknoder.
func (n *node) Mknod(context.Context, string, uint32, uint32, *gofuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

// Link implements gofs.NodeLinker.
func (n *node) Link(context.Context, gofs.InodeEmbedder, string, *gofuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

// Symlink implements gofs.NodeSymlinker.
func (n *node) Symlink(context.Context, string, string, *gofuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

// Unlink implements gofs.NodeUnlinker.
func (n *node) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }

// Rmdir implements gofs.NodeRmdirer.
func (n *node) Rmdir(context.Context, string) syscall.Errno { return syscall.EROFS }

// Rename implements gofs.NodeRenamer.
func (n *node) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}

// Write implements gofs.NodeWriter.
func (n *node) Write(context.Context, gofs.FileHandle, []byte, int64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}

var (
	_ gofs.NodeSetattrer     = (*node)(nil)
	_ gofs.NodeSetxattrer    = (*node)(nil)
	_ gofs.NodeRemovexattrer = (*node)(nil)
	_ gofs.NodeCreater       = (*node)(nil)
	_ gofs.NodeMkdirer       = (*node)(nil)
	_ gofs.NodeMknoder       = (*node)(nil)
	_ gofs.NodeLinker        = (*node)(nil)
	_ gofs.NodeSymlinker     = (*node)(nil)
	_ gofs.NodeUnlinker      = (*node)(nil)
	_ gofs.NodeRmdirer       = (*node)(nil)
	_ gofs.NodeRenamer       = (*node)(nil)
	_ gofs.NodeWriter        = (*node)(nil)
)
