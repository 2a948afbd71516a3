//! Whether an x86-64 ELF executable is static: it names no program interpreter
//! (no `PT_INTERP`, so the kernel maps no `ld.so`) and needs no shared library
//! (no `DT_NEEDED`). A static-PIE, as Rust's musl target makes, has a dynamic
//! section for its own relocations, but neither of these.
//!
//! Only the program headers and the dynamic section are read: enough for a
//! `FROM scratch` image to know its binary can start with nothing beside it.

/// Why the bytes are not a static executable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotStatic {
    #[error("not a 64-bit little-endian ELF file")]
    NotElf64,
    #[error("truncated ELF file: {0} is out of bounds")]
    Truncated(&'static str),
    #[error("it asks for the program interpreter {0:?} (PT_INTERP): it is dynamically linked")]
    Interpreter(String),
    #[error("it needs {0} shared libraries (DT_NEEDED)")]
    Needed(usize),
}

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;

/// Checks that `bytes` is a static executable (see the module documentation).
pub fn check_static(bytes: &[u8]) -> Result<(), NotStatic> {
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01") {
        return Err(NotStatic::NotElf64);
    }
    let phoff = read_u64(bytes, 0x20, "e_phoff")?;
    let phentsize = u64::from(read_u16(bytes, 0x36, "e_phentsize")?);
    let phnum = u64::from(read_u16(bytes, 0x38, "e_phnum")?);
    for i in 0..phnum {
        let header = offset(phoff + i * phentsize, "a program header")?;
        let p_type = read_u32(bytes, header, "p_type")?;
        let p_offset = offset(read_u64(bytes, header + 8, "p_offset")?, "p_offset")?;
        let p_filesz = offset(read_u64(bytes, header + 32, "p_filesz")?, "p_filesz")?;
        let segment = bytes
            .get(p_offset..p_offset.saturating_add(p_filesz))
            .ok_or(NotStatic::Truncated("a segment"))?;
        match p_type {
            PT_INTERP => {
                let path = segment.split(|b| *b == 0).next().unwrap_or_default();
                return Err(NotStatic::Interpreter(
                    String::from_utf8_lossy(path).into_owned(),
                ));
            }
            PT_DYNAMIC => {
                let needed = segment
                    .chunks_exact(16)
                    .map(|entry| u64::from_le_bytes(entry[..8].try_into().unwrap_or_default()))
                    .take_while(|tag| *tag != DT_NULL)
                    .filter(|tag| *tag == DT_NEEDED)
                    .count();
                if needed > 0 {
                    return Err(NotStatic::Needed(needed));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn offset(value: u64, what: &'static str) -> Result<usize, NotStatic> {
    usize::try_from(value).map_err(|_| NotStatic::Truncated(what))
}

fn field<const N: usize>(
    bytes: &[u8],
    at: usize,
    what: &'static str,
) -> Result<[u8; N], NotStatic> {
    bytes
        .get(at..at.saturating_add(N))
        .and_then(|b| b.try_into().ok())
        .ok_or(NotStatic::Truncated(what))
}

fn read_u16(bytes: &[u8], at: usize, what: &'static str) -> Result<u16, NotStatic> {
    field(bytes, at, what).map(u16::from_le_bytes)
}

fn read_u32(bytes: &[u8], at: usize, what: &'static str) -> Result<u32, NotStatic> {
    field(bytes, at, what).map(u32::from_le_bytes)
}

fn read_u64(bytes: &[u8], at: usize, what: &'static str) -> Result<u64, NotStatic> {
    field(bytes, at, what).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header followed by `segments` as (type, contents).
    fn mk_elf(segments: &[(u32, &[u8])]) -> Vec<u8> {
        let phoff = 64u64;
        let data_start = phoff as usize + 56 * segments.len();
        let mut out = vec![0u8; data_start];
        out[..6].copy_from_slice(b"\x7fELF\x02\x01");
        out[0x20..0x28].copy_from_slice(&phoff.to_le_bytes());
        out[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        out[0x38..0x3a].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, (p_type, contents)) in segments.iter().enumerate() {
            let header = 64 + 56 * i;
            let at = out.len() as u64;
            out[header..header + 4].copy_from_slice(&p_type.to_le_bytes());
            out[header + 8..header + 16].copy_from_slice(&at.to_le_bytes());
            out[header + 32..header + 40].copy_from_slice(&(contents.len() as u64).to_le_bytes());
            out.extend_from_slice(contents);
        }
        out
    }

    fn mk_dynamic(tags: &[u64]) -> Vec<u8> {
        tags.iter()
            .chain([&DT_NULL])
            .flat_map(|tag| [tag.to_le_bytes(), 0u64.to_le_bytes()].concat())
            .collect()
    }

    #[test]
    fn a_static_pie_passes() {
        // INIT (12) and GNU_HASH: a dynamic section with no DT_NEEDED.
        let dynamic = mk_dynamic(&[12, 0x6fff_fef5]);
        assert_eq!(
            check_static(&mk_elf(&[(1, b"code"), (PT_DYNAMIC, &dynamic)])),
            Ok(())
        );
    }

    #[test]
    fn an_interpreter_is_named() {
        let elf = mk_elf(&[(PT_INTERP, b"/lib64/ld-linux-x86-64.so.2\0")]);
        assert_eq!(
            check_static(&elf),
            Err(NotStatic::Interpreter("/lib64/ld-linux-x86-64.so.2".into()))
        );
    }

    #[test]
    fn needed_libraries_are_counted_up_to_dt_null() {
        let mut dynamic = mk_dynamic(&[DT_NEEDED, 12, DT_NEEDED]);
        // After DT_NULL: not an entry.
        dynamic.extend([DT_NEEDED.to_le_bytes(), 0u64.to_le_bytes()].concat());
        assert_eq!(
            check_static(&mk_elf(&[(PT_DYNAMIC, &dynamic)])),
            Err(NotStatic::Needed(2))
        );
    }

    #[test]
    fn other_files_are_refused() {
        assert_eq!(check_static(b"#!/bin/sh\n"), Err(NotStatic::NotElf64));
        let mut elf = mk_elf(&[(PT_INTERP, b"/lib/ld.so\0")]);
        elf.truncate(100);
        assert!(matches!(check_static(&elf), Err(NotStatic::Truncated(_))));
    }
}
