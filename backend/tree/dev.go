package tree

// Device numbers (Entry.Rdev) are stored in Linux's dev_t encoding on
// every platform, so a listing means the same device wherever it was
// ingested; ingest and extract convert from and to the local encoding.

// Mkdev encodes a device's major and minor numbers as Entry.Rdev.
func Mkdev(major, minor uint32) uint64 {
	return uint64(major&0xfff)<<8 | uint64(major&^0xfff)<<32 |
		uint64(minor&0xff) | uint64(minor&^0xff)<<12
}

// Major is the major number of Entry.Rdev.
func Major(rdev uint64) uint32 {
	return uint32(rdev>>8&0xfff | rdev>>32&^0xfff)
}

// Minor is the minor number of Entry.Rdev.
func Minor(rdev uint64) uint32 {
	return uint32(rdev&0xff | rdev>>12&^0xff)
}
