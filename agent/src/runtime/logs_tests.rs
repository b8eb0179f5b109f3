//! Unit tests of `logs`: rotation by size and count, compression, reading
//! order across files, line splitting, `none` draining.

use super::*;

fn line(i: i64, data: &[u8]) -> LogLine {
    LogLine {
        timestamp_ns: i,
        stream: 1,
        data: data.to_vec(),
    }
}

fn names(dir: &Path) -> Vec<String> {
    log_file_names(dir)
        .iter()
        .map(|(p, _)| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn default_rotation_keeps_two_files_of_10_mib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = LogSink::open(dir.path(), LogPolicy::default()).expect("sink");
    let big = vec![b'x'; 1000];
    let max = 10 * 1024 * 1024;
    let n = (max / 1000) as usize + 10;
    for i in 0..n {
        sink.write(line(i as i64, &big));
    }
    assert!(dir.path().join("log.jsonl.1").exists());
    assert!(!dir.path().join("log.jsonl.2").exists());
    let size = std::fs::metadata(dir.path().join(LOG_FILE))
        .expect("log")
        .len();
    assert!(size < max);
    let lines = read_history(open_log_files(dir.path()), 5, 0);
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[4].timestamp_ns, n as i64 - 1);
    let since = read_history(open_log_files(dir.path()), -1, n as i64 - 3);
    assert_eq!(since.len(), 3);
}

#[test]
fn small_max_size_keeps_max_files_the_oldest_dropped_and_reads_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = LogPolicy::Files {
        max_size: 2000,
        max_files: 3,
        compress: false,
    };
    let sink = LogSink::open(dir.path(), policy).expect("sink");
    let n = 500;
    for i in 0..n {
        sink.write(line(i, format!("line {i:05}\n").as_bytes()));
    }
    assert_eq!(
        names(dir.path()),
        ["log.jsonl.2", "log.jsonl.1", "log.jsonl"]
    );
    for (p, _) in log_file_names(dir.path()) {
        let len = std::fs::metadata(&p).expect("meta").len();
        assert!(len <= 2000, "{} is {len} bytes", p.display());
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    // Everything kept reads back oldest first, ending with the newest line,
    // with no gap: the oldest lines were dropped, never the middle ones.
    let lines = read_history(open_log_files(dir.path()), -1, 0);
    assert!(
        lines.len() < n as usize && lines.len() > 50,
        "{}",
        lines.len()
    );
    let first = lines[0].timestamp_ns;
    assert!(first > 0);
    for (k, l) in lines.iter().enumerate() {
        assert_eq!(l.timestamp_ns, first + k as i64);
        assert_eq!(l.data, format!("line {:05}\n", l.timestamp_ns).into_bytes());
    }
    assert_eq!(lines.last().map(|l| l.timestamp_ns), Some(n - 1));
    // The tail spans files too.
    let tail = read_history(open_log_files(dir.path()), 100, 0);
    assert_eq!(tail.len(), 100);
    assert_eq!(tail[0].timestamp_ns, n - 100);
    remove_log_files(dir.path()).expect("remove");
    assert!(log_file_names(dir.path()).is_empty());
}

#[test]
fn compress_gzips_the_rotated_files_and_they_read_back_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = LogPolicy::Files {
        max_size: 2000,
        max_files: 3,
        compress: true,
    };
    let sink = LogSink::open(dir.path(), policy).expect("sink");
    let n = 500;
    for i in 0..n {
        sink.write(line(i, format!("line {i:05}\n").as_bytes()));
    }
    sink.settle();
    assert_eq!(
        names(dir.path()),
        ["log.jsonl.2.gz", "log.jsonl.1.gz", "log.jsonl"]
    );
    for (p, gz) in log_file_names(dir.path()) {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        if gz {
            let bytes = std::fs::read(&p).expect("read");
            assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic in {}", p.display());
        }
    }
    let lines = read_history(open_log_files(dir.path()), -1, 0);
    let first = lines[0].timestamp_ns;
    assert!(first > 0);
    for (k, l) in lines.iter().enumerate() {
        assert_eq!(l.timestamp_ns, first + k as i64);
        assert_eq!(l.data, format!("line {:05}\n", l.timestamp_ns).into_bytes());
    }
    assert_eq!(lines.last().map(|l| l.timestamp_ns), Some(n - 1));
    // A compression cut short leaves a .gz.tmp: gone at the next open,
    // and with the logs.
    std::fs::write(dir.path().join("log.jsonl.1.gz.tmp"), b"x").expect("tmp");
    drop(LogSink::open(dir.path(), policy).expect("reopen"));
    assert!(!dir.path().join("log.jsonl.1.gz.tmp").exists());
    remove_log_files(dir.path()).expect("remove");
    assert!(std::fs::read_dir(dir.path()).expect("dir").next().is_none());
}

#[test]
fn one_file_starts_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = LogPolicy::Files {
        max_size: 1024,
        max_files: 1,
        compress: false,
    };
    let sink = LogSink::open(dir.path(), policy).expect("sink");
    for i in 0..100 {
        sink.write(line(i, b"0123456789\n"));
    }
    assert_eq!(log_file_names(dir.path()).len(), 1);
    let lines = read_history(open_log_files(dir.path()), -1, 0);
    assert_eq!(lines.last().map(|l| l.timestamp_ns), Some(99));
    assert!(lines.len() < 100);
}

#[test]
fn discard_keeps_nothing_and_drains_the_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = LogSink::open(dir.path(), LogPolicy::Discard).expect("sink");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (r, w) = nix::unistd::pipe().expect("pipe");
    let reader = spawn_reader(rt.handle(), sink, vec![(1, r)]);
    // Far more than a pipe holds: a writer would block forever if the
    // output were not read.
    let writer = std::thread::spawn(move || {
        let mut f = File::from(w);
        let chunk = vec![b'y'; 64 * 1024];
        for _ in 0..64 {
            f.write_all(&chunk).expect("write");
        }
    });
    rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(20), reader)
            .await
            .expect("reader ends once the writer is gone")
            .expect("join");
    });
    writer.join().expect("writer");
    assert!(log_file_names(dir.path()).is_empty());
    assert!(read_history(open_log_files(dir.path()), -1, 0).is_empty());
}

#[test]
fn only_log_files_are_log_files() {
    for name in ["log.jsonl", "log.jsonl.1", "log.jsonl.42", "log.jsonl.3.gz"] {
        assert!(is_log_file(OsStr::new(name)), "{name}");
    }
    for name in [
        "log.jsonl.",
        "log.jsonl.01",
        "log.jsonl.x",
        "log.json",
        "meta.json",
    ] {
        assert!(!is_log_file(OsStr::new(name)), "{name}");
    }
}

#[test]
fn line_splitting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = LogSink::open(dir.path(), LogPolicy::default()).expect("sink");
    let mut partial = b"a\nbb\nccc".to_vec();
    emit_lines(&sink, 2, &mut partial);
    assert_eq!(partial, b"ccc");
    let mut long = vec![b'y'; MAX_LINE * 2 + 5];
    long.push(b'\n');
    emit_lines(&sink, 1, &mut long);
    assert!(long.is_empty());
    let lines = read_history(open_log_files(dir.path()), -1, 0);
    let data: Vec<Vec<u8>> = lines.iter().map(|l| l.data.clone()).collect();
    assert_eq!(data[0], b"a\n");
    assert_eq!(data[1], b"bb\n");
    assert_eq!(lines[0].stream, 2);
    assert_eq!(data[2].len(), MAX_LINE);
    assert_eq!(data[3].len(), MAX_LINE);
    assert_eq!(data[4].len(), 6);
}
