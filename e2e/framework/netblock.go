package framework

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
)

// Every environment owns one block of addresses and bridge names, so
// environments in parallel tests, parallel test binaries and the demo never
// share a subnet or a bridge. The blocks come from 198.18.0.0/15, which
// RFC 2544 sets aside for network tests, so they cannot overlap the host's
// uplink or any routed network.
const (
	blockCount = 32 // /20 blocks in a /15
	// SubnetsPerBlock is the number of /24 subnets in one block.
	SubnetsPerBlock = 16
	// blockLockDir holds one lock file per block. A block is taken while a
	// process holds an flock on its file, so a crashed process frees it.
	blockLockDir = "/tmp/nri-cni-e2e-blocks"
)

var blocksBase = netip.MustParseAddr("198.18.0.0")

// block is an address block and bridge name prefix held by one environment.
type block struct {
	index int
	lock  *os.File
}

// claimBlock takes the first free block whose addresses no host interface
// uses. The first block that any process claims also saves
// net.ipv4.ip_forward, which the bridge plugin turns on, and the last release
// restores it.
func claimBlock() (*block, error) {
	if err := os.MkdirAll(blockLockDir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", blockLockDir, err)
	}
	var claimed *block
	err := withGlobalLock(func() error {
		held, err := anyBlockHeld()
		if err != nil {
			return err
		}
		if !held {
			if err := saveIPForward(); err != nil {
				return err
			}
		}
		for index := 0; index < blockCount; index++ {
			b, err := tryBlock(index)
			if err != nil {
				return err
			}
			if b != nil {
				claimed = b
				return nil
			}
		}
		return fmt.Errorf("failed to find a free address block: all %d blocks of %s/15 are taken or in use on the host", blockCount, blocksBase)
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// tryBlock locks block index and returns it, or returns nil when another
// environment holds it or a host interface uses its addresses.
func tryBlock(index int) (*block, error) {
	file, err := os.OpenFile(blockLockPath(index), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open %s: %w", blockLockPath(index), err)
	}
	if err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		file.Close()
		return nil, nil
	}
	b := &block{index: index, lock: file}

	// Bridges of this block that exist now were left by a process that died
	// before its cleanup, because the lock was free.
	if err := deleteLinksWithPrefix(b.linkPrefix()); err != nil {
		file.Close()
		return nil, fmt.Errorf("failed to delete bridges left in address block %d: %w", index, err)
	}
	inUse, err := b.usedByHost()
	if err != nil || inUse {
		file.Close()
		return nil, err
	}
	return b, nil
}

// release frees the block. When no other block is held, it restores
// net.ipv4.ip_forward to the value saved by the first claim.
func (b *block) release() error {
	return withGlobalLock(func() error {
		b.lock.Close()
		held, err := anyBlockHeld()
		if err != nil || held {
			return err
		}
		return restoreIPForward()
	})
}

func blockLockPath(index int) string {
	return filepath.Join(blockLockDir, fmt.Sprintf("block-%02d", index))
}

// withGlobalLock runs f while this process holds the lock that serializes
// block claims and releases of all processes.
func withGlobalLock(f func() error) error {
	path := filepath.Join(blockLockDir, "global.lock")
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("failed to open %s: %w", path, err)
	}
	defer file.Close()
	if err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("failed to lock %s: %w", path, err)
	}
	return f()
}

// anyBlockHeld reports whether an environment of any process holds a block.
// An flock conflicts with every other open file description of the file, so
// this also detects the blocks of this process.
func anyBlockHeld() (bool, error) {
	for index := 0; index < blockCount; index++ {
		file, err := os.OpenFile(blockLockPath(index), os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("failed to open %s: %w", blockLockPath(index), err)
		}
		err = syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		file.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("failed to test lock %s: %w", blockLockPath(index), err)
		}
	}
	return false, nil
}

const ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

// savedIPForwardPath holds net.ipv4.ip_forward from before the first
// environment. A file left by a process that died keeps its value, which is
// the one from before that process.
var savedIPForwardPath = filepath.Join(blockLockDir, "ip_forward.saved")

func saveIPForward() error {
	if _, err := os.Stat(savedIPForwardPath); err == nil {
		return nil
	}
	value, err := os.ReadFile(ipForwardPath)
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", ipForwardPath, err)
	}
	if err := os.WriteFile(savedIPForwardPath, value, 0o644); err != nil {
		return fmt.Errorf("failed to save %s: %w", ipForwardPath, err)
	}
	return nil
}

func restoreIPForward() error {
	value, err := os.ReadFile(savedIPForwardPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to read saved %s: %w", ipForwardPath, err)
	}
	if err := os.WriteFile(ipForwardPath, value, 0o644); err != nil {
		return fmt.Errorf("failed to restore %s to %q: %w", ipForwardPath, bytes.TrimSpace(value), err)
	}
	if err := os.Remove(savedIPForwardPath); err != nil {
		return fmt.Errorf("failed to remove %s: %w", savedIPForwardPath, err)
	}
	return nil
}

// prefix returns the block as a /20.
func (b *block) prefix() netip.Prefix {
	return netip.PrefixFrom(b.subnetBase(0), 20)
}

func (b *block) subnetBase(i int) netip.Addr {
	bytes := blocksBase.As4()
	offset := b.index*SubnetsPerBlock + i
	bytes[1] += byte(offset / 256)
	bytes[2] = byte(offset % 256)
	return netip.AddrFrom4(bytes)
}

// subnet returns the i-th /24 of the block.
func (b *block) subnet(i int) netip.Prefix {
	return netip.PrefixFrom(b.subnetBase(i), 24)
}

// linkPrefix is the start of every bridge name of the block. With the
// 15-byte limit of Linux interface names it leaves 10 bytes for a suffix.
func (b *block) linkPrefix() string {
	return fmt.Sprintf("nce%02d", b.index)
}

func (b *block) usedByHost() (bool, error) {
	addresses, err := net.InterfaceAddrs()
	if err != nil {
		return false, fmt.Errorf("failed to list host addresses: %w", err)
	}
	for _, address := range addresses {
		ipNet, ok := address.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipNet.IP.To4())
		if !ok {
			continue
		}
		if b.prefix().Contains(ip) {
			return true, nil
		}
	}
	return false, nil
}
