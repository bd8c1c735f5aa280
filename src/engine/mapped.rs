//! Read-only memory maps of files being hashed, that survive truncation.
//!
//! Why: hashing through `read()` copies every byte out of the page cache
//! into a buffer, and on a large file that copy costs more CPU than BLAKE3
//! itself (measured: 0.45 s of system time per GB here, against 0.35 s of
//! hashing). A map hands the hasher the page-cache pages themselves.
//!
//! The danger of a map is truncation: touching a mapped page that is past
//! the file's new end raises SIGBUS, whose default action kills the run,
//! and live database folders truncate files routinely. So every map made
//! here is registered in a fixed table, and a process-wide SIGBUS handler
//! checks the faulting address against it. A fault inside a registered map
//! is repaired by mapping anonymous zero pages over the rest of that map
//! (`MAP_FIXED`), and the map is flagged: the hasher then reads zeros, runs
//! to its end, and the caller sees [`Map::faulted`] and throws the digest
//! away (the file changed; its before/after `fstat` differs too). A fault
//! anywhere else is handed on to the handler that was installed before
//! ours (Rust's own stack-overflow handler, or the default action).
//!
//! The handler only loads atomics and calls `mmap`, a raw system call, so
//! it is async-signal-safe. Linux only; elsewhere [`Map::new`] returns
//! `None` and callers read instead.
//!
//! Unmapping is what costs, not mapping: in a process whose threads run on
//! several cores, every `munmap` sends the other cores an interrupt to
//! flush their TLBs and waits for each (on a virtual machine, two exits to
//! the hypervisor): ~36 µs a call, 12.6 % of the CPU samples of a scan of
//! 20,000 files of 1 KiB–2 MiB on 2 cores, with the two hashers taking
//! turns to wait for each other's flush. So small maps (at most
//! [`ARENA_MAP_MAX`]) are made side by side in a per-thread *arena*, a
//! reserved stretch of address space: a map there replaces reserved,
//! never-touched pages (no flush), a dropped map stays until the arena is
//! full, and then the whole arena is reserved again in one call, one flush
//! for dozens of files. [`release`] gives a thread's arena back; the scan
//! calls it on every thread of the pool once it has hashed everything, so
//! no map of a file (deleted since, perhaps) outlives the scan.

use std::fs::File;
use std::io;

/// Maps of at most this many bytes are made in the thread's arena.
pub const ARENA_MAP_MAX: usize = 2 << 20;
/// The address space of one thread's arena: the most of its files still
/// mapped (counted in the process's RSS, though they are page cache) before
/// one call unmaps them all.
const ARENA: usize = 8 << 20;

/// A read-only, shared-nothing map of `len` bytes of a file at an offset.
/// Not `Send`: a map in an arena is dropped on the thread that made it.
pub struct Map {
    ptr: *mut u8,
    len: usize,
    slot: usize,
    /// Made in this thread's arena: dropping it leaves the pages mapped
    /// until the arena is reserved again.
    in_arena: bool,
}

// The map is read-only memory; the slot is owned by this value.
unsafe impl Sync for Map {}

impl Map {
    /// Maps `len` bytes of `file` from `offset` (a multiple of the page
    /// size). `Ok(None)` when the file cannot be mapped here (a file
    /// system without mmap, every guard slot in use, not Linux): read it
    /// instead. `len` must be at least 1.
    pub fn new(file: &File, offset: u64, len: usize) -> io::Result<Option<Map>> {
        imp::map(file, offset, len)
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is mapped readable for the life of self;
        // pages past a new end of file are replaced by zero pages by the
        // SIGBUS handler, so reading never faults fatally.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// True when a page of the map was past the end of the file when it
    /// was touched (the file shrank while mapped) or could not be read: the
    /// bytes seen are not the file's.
    pub fn faulted(&self) -> bool {
        imp::faulted(self.slot)
    }

    /// True when mapping is available at all (Linux).
    pub fn supported() -> bool {
        cfg!(target_os = "linux")
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        imp::unmap(self);
    }
}

/// Unmaps this thread's arena (every map in it has been dropped). The
/// next map made on this thread reserves a fresh one.
pub fn release() {
    imp::release();
}

#[cfg(target_os = "linux")]
mod imp {
    use std::cell::RefCell;
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;
    use std::sync::Once;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::{ARENA, ARENA_MAP_MAX, Map};

    /// How many maps can be live at once. Each hashing thread holds one or
    /// two (more only when rayon nests work); a full table means "read".
    const SLOTS: usize = 512;

    struct Slot {
        /// Claimed by a live map.
        busy: AtomicBool,
        /// First byte of the map; 0 while the slot is not armed.
        start: AtomicUsize,
        /// One past the last byte of the map.
        end: AtomicUsize,
        faulted: AtomicBool,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const FREE: Slot = Slot {
        busy: AtomicBool::new(false),
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        faulted: AtomicBool::new(false),
    };
    static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
    static PAGE: AtomicUsize = AtomicUsize::new(4096);
    static INSTALL: Once = Once::new();
    static INSTALLED: AtomicBool = AtomicBool::new(false);

    /// The SIGBUS disposition before ours, for faults that are not ours.
    /// Written once, before our handler is installed; read only after.
    static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();

    fn install() -> bool {
        INSTALL.call_once(|| unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE.store(page as usize, Ordering::Relaxed);
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                return;
            }
            (*std::ptr::addr_of_mut!(PREVIOUS)).write(old);
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            // SA_ONSTACK: run on the alternate stack where Rust set one up,
            // so a stack overflow (which Rust reports via SIGSEGV/SIGBUS)
            // still reaches its handler through ours.
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            if libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut()) == 0 {
                INSTALLED.store(true, Ordering::Release);
            }
        });
        INSTALLED.load(Ordering::Acquire)
    }

    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO.
        let addr = unsafe { (*info).si_addr() } as usize;
        let page = PAGE.load(Ordering::Relaxed);
        for slot in TABLE.iter() {
            let start = slot.start.load(Ordering::Acquire);
            if start == 0 || addr < start {
                continue;
            }
            let end = slot.end.load(Ordering::Acquire);
            if addr >= end {
                continue;
            }
            // Ours: zero pages from the faulting page to the end of the
            // map (the file ends before it), flag, and let the faulting
            // instruction run again.
            let from = addr & !(page - 1);
            let len = (end - from).div_ceil(page) * page;
            unsafe {
                let errno = *libc::__errno_location();
                let p = libc::mmap(
                    from as *mut libc::c_void,
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                );
                *libc::__errno_location() = errno;
                if p != libc::MAP_FAILED {
                    slot.faulted.store(true, Ordering::Release);
                    return;
                }
            }
            break;
        }
        // Not ours (or unrepairable): what would have happened without us.
        unsafe { chain(sig, info, ctx) }
    }

    unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        unsafe {
            let prev = (*std::ptr::addr_of!(PREVIOUS)).assume_init_ref();
            let handler = prev.sa_sigaction;
            if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
                // Restore the default and return: the faulting instruction
                // runs again and the default action (core dump) happens.
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut dfl.sa_mask);
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(handler);
                f(sig, info, ctx);
            } else {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                f(sig);
            }
        }
    }

    /// One thread's stretch of reserved address space (see the module
    /// doc): maps are made at `used` and go forward; the whole stretch is
    /// reserved again once it is full and no map in it is live.
    struct Arena {
        base: usize,
        used: usize,
        /// Maps made here and not yet dropped.
        live: usize,
        /// A map over the reservation failed: the kernel may have left a
        /// hole in it that another mapping could take, so nothing is ever
        /// mapped over this arena again, nor is it reserved again (its
        /// maps stay until the process ends).
        poisoned: bool,
    }

    impl Drop for Arena {
        /// At `release` or when the thread ends.
        fn drop(&mut self) {
            if self.live == 0 && !self.poisoned {
                // SAFETY: the arena is this thread's and holds no live map.
                unsafe { libc::munmap(self.base as *mut libc::c_void, ARENA) };
            }
        }
    }

    /// Arenas being reserved again right now, on any thread. That call
    /// unmaps all of an arena's pages while it holds the process's mmap
    /// lock for writing, and every other thread's `mmap` waits for it (it
    /// spins: 3.5 % of a 2-core scan's samples); a small file met meanwhile
    /// is read instead (its copy costs less than the wait).
    static RESETTING: AtomicUsize = AtomicUsize::new(0);

    thread_local! {
        static ARENA_OF_THREAD: RefCell<Option<Arena>> = const { RefCell::new(None) };
    }

    /// Reserves `ARENA` bytes of address space that nothing can touch, at
    /// `at` (replacing what is there) or anywhere.
    fn reserve(at: Option<usize>) -> Option<usize> {
        let fixed = if at.is_some() { libc::MAP_FIXED } else { 0 };
        // SAFETY: an inaccessible anonymous mapping; at `at` it replaces
        // only this thread's arena, in which no map is live.
        let p = unsafe {
            libc::mmap(
                at.unwrap_or(0) as *mut libc::c_void,
                ARENA,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | fixed,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then_some(p as usize)
    }

    /// Where in this thread's arena to map `len` bytes, or `None` to map
    /// them anywhere (too large, the arena full of live maps, or no arena).
    fn arena_place(len: usize) -> Option<usize> {
        if len > ARENA_MAP_MAX {
            return None;
        }
        let page = PAGE.load(Ordering::Relaxed);
        let need = len.div_ceil(page) * page;
        ARENA_OF_THREAD.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(Arena {
                    base: reserve(None)?,
                    used: 0,
                    live: 0,
                    poisoned: false,
                });
            }
            let arena = cell.as_mut()?;
            if arena.poisoned {
                return None;
            }
            if arena.used + need > ARENA {
                if arena.live > 0 {
                    return None;
                }
                // One flush for every map made here since the last time.
                RESETTING.fetch_add(1, Ordering::Relaxed);
                let again = reserve(Some(arena.base));
                RESETTING.fetch_sub(1, Ordering::Relaxed);
                if again.is_none() {
                    arena.poisoned = true;
                    return None;
                }
                arena.used = 0;
            }
            Some(arena.base + arena.used)
        })
    }

    /// Records the outcome of a map made at `at` in this thread's arena.
    fn arena_mapped(at: usize, len: usize, ok: bool) {
        let page = PAGE.load(Ordering::Relaxed);
        ARENA_OF_THREAD.with(|cell| {
            if let Some(arena) = cell.borrow_mut().as_mut() {
                debug_assert_eq!(at, arena.base + arena.used);
                if ok {
                    arena.used += len.div_ceil(page) * page;
                    arena.live += 1;
                } else {
                    arena.poisoned = true;
                }
            }
        });
    }

    pub(super) fn release() {
        ARENA_OF_THREAD.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.as_ref().is_some_and(|a| a.live == 0) {
                *cell = None;
            }
        });
    }

    pub(super) fn map(file: &File, offset: u64, len: usize) -> io::Result<Option<Map>> {
        assert!(len > 0, "empty maps are never made");
        if !install() {
            return Ok(None);
        }
        if len <= ARENA_MAP_MAX && RESETTING.load(Ordering::Relaxed) > 0 {
            return Ok(None);
        }
        let Some(slot) = claim() else {
            return Ok(None);
        };
        let at = arena_place(len);
        let fixed = if at.is_some() { libc::MAP_FIXED } else { 0 };
        // Not MAP_POPULATE: populating holds the process's mmap lock for
        // reading while every page is mapped, and the other hashers' maps
        // (which take it for writing) waited on it: 4.5 % of a 2-core
        // scan's samples spinning on the lock. Pages faulted in as BLAKE3
        // reads (64 KiB a fault) take only the lock of their own map.
        // SAFETY: a fresh read-only private mapping; nothing else aliases
        // it mutably. At `at` it replaces reserved, untouched address
        // space of this thread's arena, where no live map is.
        let ptr = unsafe {
            libc::mmap(
                at.unwrap_or(0) as *mut libc::c_void,
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | fixed,
                file.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if let Some(at) = at {
            arena_mapped(at, len, ptr != libc::MAP_FAILED);
        }
        if ptr == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            TABLE[slot].busy.store(false, Ordering::Release);
            return match e.raw_os_error() {
                // The file system cannot map files, or the address space
                // is short: read instead.
                Some(libc::ENODEV | libc::EINVAL | libc::ENOMEM | libc::EACCES) => Ok(None),
                _ => Err(e),
            };
        }
        let s = &TABLE[slot];
        s.faulted.store(false, Ordering::Relaxed);
        s.end.store(ptr as usize + len, Ordering::Release);
        s.start.store(ptr as usize, Ordering::Release);
        Ok(Some(Map {
            ptr: ptr as *mut u8,
            len,
            slot,
            in_arena: at.is_some(),
        }))
    }

    fn claim() -> Option<usize> {
        TABLE.iter().position(|s| {
            s.busy
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    pub(super) fn faulted(slot: usize) -> bool {
        TABLE[slot].faulted.load(Ordering::Acquire)
    }

    pub(super) fn unmap(m: &mut Map) {
        let s = &TABLE[m.slot];
        // Disarm before unmapping, so that an address the kernel hands out
        // again is never matched to this slot.
        s.start.store(0, Ordering::Release);
        s.end.store(0, Ordering::Release);
        if m.in_arena {
            // Left mapped until the arena is reserved again (one flush for
            // all of its maps); Map is not Send, so this is its thread.
            ARENA_OF_THREAD.with(|cell| {
                if let Some(arena) = cell.borrow_mut().as_mut() {
                    arena.live -= 1;
                }
            });
        } else {
            unsafe {
                libc::munmap(m.ptr as *mut libc::c_void, m.len);
            }
        }
        s.busy.store(false, Ordering::Release);
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::Map;
    use std::fs::File;
    use std::io;

    pub(super) fn map(_: &File, _: u64, _: usize) -> io::Result<Option<Map>> {
        Ok(None)
    }
    pub(super) fn faulted(_: usize) -> bool {
        true
    }
    pub(super) fn unmap(_: &mut Map) {}
    pub(super) fn release() {}
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    #[test]
    fn a_map_reads_the_file() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let m = Map::new(&f, 0, data.len()).unwrap().unwrap();
        assert_eq!(m.bytes(), &data[..]);
        assert!(!m.faulted());
        let page = 4096;
        let tail = Map::new(&f, page as u64, data.len() - page)
            .unwrap()
            .unwrap();
        assert_eq!(tail.bytes(), &data[page..]);
    }

    #[test]
    fn truncation_under_a_map_reads_zeros_and_flags_it_instead_of_killing_the_process() {
        let mut f = tempfile::tempfile().unwrap();
        let data = vec![7u8; 64 << 10];
        f.write_all(&data).unwrap();
        let m = Map::new(&f, 0, data.len()).unwrap().unwrap();
        assert_eq!(m.bytes()[0], 7);
        f.set_len(5000).unwrap();
        // Past the new end: would be SIGBUS (death) without the handler.
        let seen = m.bytes().to_vec();
        assert!(m.faulted());
        assert_eq!(&seen[..5000], &data[..5000]);
        assert!(seen[8192..].iter().all(|&b| b == 0));
        drop(m);
        // A fresh map of the same slot is clean again.
        let again = Map::new(&f, 0, 5000).unwrap().unwrap();
        assert!(!again.faulted());
        assert_eq!(again.bytes(), &data[..5000]);
    }

    fn file_of(len: usize, seed: u8) -> (File, Vec<u8>) {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ seed).collect();
        f.write_all(&data).unwrap();
        (f, data)
    }

    /// Small maps are made side by side in the thread's arena and left
    /// mapped when dropped; once it is full the arena is reserved again in
    /// one call and used from its start, every map reading its own file.
    #[test]
    fn small_maps_share_the_threads_arena_and_it_starts_over_when_full() {
        std::thread::spawn(|| {
            let len: usize = 300 << 10;
            let step = len.div_ceil(4096) * 4096;
            let per_arena = ARENA / step;
            let mut first = None;
            for i in 0..per_arena * 2 + 1 {
                let (f, data) = file_of(len, i as u8);
                let m = Map::new(&f, 0, len).unwrap().unwrap();
                assert!(m.in_arena);
                let base = *first.get_or_insert(m.ptr as usize);
                // Side by side, and from the start again once full.
                assert_eq!(m.ptr as usize, base + (i % per_arena) * step, "map {i}");
                assert_eq!(m.bytes(), &data[..], "map {i}");
                assert!(!m.faulted());
            }
            // Too large for the arena: mapped on its own.
            let (f, data) = file_of(ARENA_MAP_MAX + 1, 9);
            let big = Map::new(&f, 0, data.len()).unwrap().unwrap();
            assert!(!big.in_arena);
            assert_eq!(big.bytes(), &data[..]);
        })
        .join()
        .unwrap();
    }

    /// A live map is never unmapped under its reader: while one is held,
    /// a full arena is not reserved again and new maps go elsewhere.
    #[test]
    fn a_live_map_keeps_its_arena_from_starting_over() {
        std::thread::spawn(|| {
            let len = 512 << 10;
            let (f, held_data) = file_of(len, 1);
            let held = Map::new(&f, 0, len).unwrap().unwrap();
            let base = held.ptr as usize;
            for i in 0..(ARENA / len) * 2 {
                let (f, data) = file_of(len, i as u8 + 2);
                let m = Map::new(&f, 0, len).unwrap().unwrap();
                let inside = (base..base + ARENA).contains(&(m.ptr as usize));
                assert_eq!(inside, i + 1 < ARENA / len, "map {i}");
                assert_eq!(m.bytes(), &data[..]);
                // Without the rule, the arena was reserved again by now and
                // reading the held map would crash the test.
                assert_eq!(held.bytes(), &held_data[..], "after map {i}");
            }
            drop(held);
            let (f, data) = file_of(len, 77);
            let m = Map::new(&f, 0, len).unwrap().unwrap();
            assert_eq!(m.ptr as usize, base, "the arena starts over");
            assert_eq!(m.bytes(), &data[..]);
            drop(m);
            // Given back: the next map reserves a fresh arena.
            release();
            let (f, data) = file_of(len, 78);
            let m = Map::new(&f, 0, len).unwrap().unwrap();
            assert!(m.in_arena);
            assert_eq!(m.bytes(), &data[..]);
        })
        .join()
        .unwrap();
    }

    /// A file truncated under a map in the arena is flagged like any other,
    /// and the maps made after it in the same arena read their own files.
    #[test]
    fn truncation_under_an_arena_map_is_flagged_and_the_next_map_is_clean() {
        std::thread::spawn(|| {
            let (f, data) = file_of(256 << 10, 3);
            let m = Map::new(&f, 0, data.len()).unwrap().unwrap();
            assert!(m.in_arena);
            f.set_len(10_000).unwrap();
            let seen = m.bytes().to_vec();
            assert!(m.faulted());
            assert_eq!(&seen[..10_000], &data[..10_000]);
            assert!(seen[12_288..].iter().all(|&b| b == 0));
            drop(m);
            let (g, next) = file_of(256 << 10, 4);
            let n = Map::new(&g, 0, next.len()).unwrap().unwrap();
            assert!(n.in_arena && !n.faulted());
            assert_eq!(n.bytes(), &next[..]);
        })
        .join()
        .unwrap();
    }

    /// Set in the child processes of [`foreign_faults_are_passed_on`].
    const CHILD: &str = "VOUCH_TEST_SIGBUS_CHILD";

    /// In a child: installs our handler (a registered map stays alive), then
    /// faults on a map of its own that is not registered (a file truncated
    /// under a plain `mmap`): a SIGBUS that is not ours.
    fn fault_outside_a_guarded_map() {
        let mut guarded = tempfile::tempfile().unwrap();
        guarded.write_all(&[1u8; 16 << 10]).unwrap();
        let m = Map::new(&guarded, 0, 16 << 10).unwrap().unwrap();
        assert_eq!(m.bytes()[0], 1);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[2u8; 8192]).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: a read-only shared map of a file we own.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        f.set_len(0).unwrap();
        // SAFETY: mapped above; the read faults (SIGBUS) on purpose.
        let b = unsafe { std::ptr::read_volatile((p as *const u8).add(4096)) };
        // Reached only if the fault was swallowed: a false recovery.
        eprintln!("survived a foreign SIGBUS, read {b}");
        std::process::exit(3);
    }

    #[test]
    #[ignore = "run by foreign_faults_are_passed_on in a child process"]
    fn child_foreign_fault_with_default_disposition() {
        if std::env::var_os(CHILD).is_some() {
            fault_outside_a_guarded_map();
        }
    }

    extern "C" fn exit_42(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: async-signal-safe.
        unsafe { libc::_exit(42) }
    }

    #[test]
    #[ignore = "run by foreign_faults_are_passed_on in a child process"]
    fn child_foreign_fault_with_a_previous_handler() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        // SAFETY: installs a handler that only calls _exit.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = exit_42 as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut act.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()), 0);
        }
        fault_outside_a_guarded_map();
    }

    fn run_child(name: &str) -> std::process::ExitStatus {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &format!("engine::mapped::tests::{name}"),
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("running 1 test"), "{stdout}");
        out.status
    }

    /// Our handler repairs only faults inside the maps it registered; any
    /// other SIGBUS goes where it would have gone without us: to the
    /// default action (the process dies by SIGBUS) or to the handler that
    /// was installed before ours.
    #[test]
    fn foreign_faults_are_passed_on() {
        use std::os::unix::process::ExitStatusExt;
        let status = run_child("child_foreign_fault_with_default_disposition");
        assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
        let status = run_child("child_foreign_fault_with_a_previous_handler");
        assert_eq!(status.code(), Some(42), "{status:?}");
    }
}
