//! Batched writes to BPF hash maps (BPF_MAP_UPDATE_BATCH): one system call per few thousand
//! entries instead of one per entry, for imports of large feeds.

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::{
    Pod,
    maps::{IterableMap, MapData},
};

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
/// Entries per system call.
const CHUNK: usize = 4096;

#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Write `keys[i] -> values[i]` into a hash map in batches. On error, entries of earlier
/// batches (and part of the failing one) may have been written; the caller undoes them.
pub fn update<K: Pod, V: Pod>(
    map: &impl IterableMap<K, V>,
    keys: &[K],
    values: &[V],
) -> std::io::Result<()> {
    let data: &MapData = map.map();
    let fd = data.fd().as_fd().as_raw_fd();
    for (k, v) in keys.chunks(CHUNK).zip(values.chunks(CHUNK)) {
        let mut attr = BatchAttr {
            keys: k.as_ptr() as u64,
            values: v.as_ptr() as u64,
            count: k.len().min(v.len()) as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` is a valid bpf_attr prefix of the size passed; `keys` and `values`
        // point to `count` Pod elements each (the map's key and value types), alive for the
        // call; the kernel only reads them.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
