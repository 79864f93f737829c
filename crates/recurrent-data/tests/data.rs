//! The data pipeline on real text: torchtext tokenizer fixtures, the committed mini corpus
//! (cut from the real one) as archive and as folder, broken and hostile archives, the full
//! corpus when present, and downloads from a loopback HTTP server.

use recurrent_data::download::{download, file_digests, DownloadSpec, Progress};
use recurrent_data::imdb::{self, ReadOptions};
use recurrent_data::tokenizer::basic_english;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn mini() -> PathBuf {
    fixtures().join("imdb-mini/aclImdb_v1.tar.gz")
}

#[test]
fn basic_english_matches_torchtext() {
    let p = fixtures().join("tokenizer_basic_english.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).expect("tokenizer fixture missing"))
            .unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 70);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want: Vec<&str> = c["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(basic_english(text), want, "text: {text:?}");
    }
}

#[test]
fn mini_corpus_from_archive_and_folder() {
    let opts = ReadOptions::default();
    let a = imdb::read(&mini(), &opts).unwrap();
    let c = a.counts();
    assert_eq!(
        (c.train_pos, c.train_neg, c.test_pos, c.test_neg, c.unsup),
        (150, 150, 75, 75, 0)
    );
    assert!(a.train[..150].iter().all(|r| r.label == 1 && r.rating >= 7));
    assert!(a.train[150..].iter().all(|r| r.label == 0 && r.rating <= 4));
    let with_unsup = imdb::read(
        &mini(),
        &ReadOptions {
            include_unsup: true,
            ..opts
        },
    )
    .unwrap();
    assert_eq!(with_unsup.counts().unsup, 20);
    // The same corpus extracted: same reviews.
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::open(mini()).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(f))
        .unpack(dir.path())
        .unwrap();
    for p in [dir.path().to_path_buf(), dir.path().join("aclImdb")] {
        let b = imdb::read(&p, &opts).unwrap();
        assert_eq!(b.train, a.train);
        assert_eq!(b.test, a.test);
    }
    // A folder holding the archive.
    let d2 = tempfile::tempdir().unwrap();
    std::fs::copy(mini(), d2.path().join("aclImdb_v1.tar.gz")).unwrap();
    assert_eq!(imdb::read(d2.path(), &opts).unwrap().train.len(), 300);
    // A folder with nothing in it.
    let err = imdb::read(tempfile::tempdir().unwrap().path(), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no IMDB corpus"), "{err}");
}

/// Build a .tar.gz from (path, content) pairs; `None` content makes a directory; a
/// `Some(b"->target")` content makes a symlink.
fn tarball(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut h = tar::Header::new_gnu();
        match content {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
            Some(c) if c.starts_with(b"->") => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, std::str::from_utf8(&c[2..]).unwrap())
                    .unwrap();
            }
            Some(c) if path.contains("..") => {
                // The tar crate refuses to write such names; write the raw header field.
                h.set_size(c.len() as u64);
                h.set_mode(0o644);
                let name = &mut h.as_gnu_mut().unwrap().name;
                name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                b.append(&h, *c).unwrap();
            }
            Some(c) => {
                h.set_size(c.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, path, *c).unwrap();
            }
        }
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn valid_entries() -> Vec<(&'static str, Option<&'static [u8]>)> {
    vec![
        ("aclImdb/train/pos/1_9.txt", Some(b"great".as_slice())),
        ("aclImdb/train/neg/1_2.txt", Some(b"awful".as_slice())),
        ("aclImdb/test/pos/1_8.txt", Some(b"fine".as_slice())),
        ("aclImdb/test/neg/1_1.txt", Some(b"bad".as_slice())),
        ("aclImdb/README", Some(b"readme".as_slice())),
    ]
}

fn read_bytes(bytes: &[u8]) -> Result<imdb::Imdb, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.tar.gz");
    std::fs::write(&p, bytes).unwrap();
    imdb::read(&p, &ReadOptions::default()).map_err(|e| e.to_string())
}

#[test]
fn broken_and_hostile_archives_are_clear_errors() {
    assert!(read_bytes(&tarball(&valid_entries())).is_ok());
    let with = |extra: (&'static str, Option<&'static [u8]>)| {
        let mut v = valid_entries();
        v.push(extra);
        read_bytes(&tarball(&v)).unwrap_err()
    };
    let e = with(("aclImdb/../../etc/passwd", Some(b"x")));
    assert!(e.contains(".."), "{e}");
    let e = with(("aclImdb/train/pos/2_9.txt", Some(b"->/etc/passwd")));
    assert!(e.contains("Symlink") || e.contains("links"), "{e}");
    let e = with(("aclImdb/train/pos/notes.txt", Some(b"x")));
    assert!(e.contains("<id>_<rating>.txt"), "{e}");
    let e = with(("aclImdb/train/pos/3_2.txt", Some(b"x")));
    assert!(e.contains("rating 2 does not belong in train/pos"), "{e}");
    let e = with(("other/file.txt", Some(b"x")));
    assert!(e.contains("inside the aclImdb/ folder"), "{e}");
    let e = with(("aclImdb/train/neg/5_3.txt", Some(b"caf\xe9".as_slice())));
    assert!(e.contains("not valid UTF-8"), "{e}");
    let e = with(("aclImdb/train/pos/1_10.txt", Some(b"dup".as_slice())));
    assert!(e.contains("appears twice"), "{e}");
    // A missing folder.
    let mut v = valid_entries();
    v.retain(|(p, _)| !p.starts_with("aclImdb/test/neg"));
    let e = read_bytes(&tarball(&v)).unwrap_err();
    assert!(e.contains("aclImdb/test/neg is missing"), "{e}");
    // Truncated and non-gzip files.
    let good = tarball(&valid_entries());
    let e = read_bytes(&good[..good.len() / 2]).unwrap_err();
    assert!(
        e.contains("corrupt") || e.contains("truncated") || e.contains("readable"),
        "{e}"
    );
    assert!(read_bytes(b"this is not an archive").is_err());
    // A review above the size limit.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.tar.gz");
    std::fs::write(&p, tarball(&valid_entries())).unwrap();
    let e = imdb::read(
        &p,
        &ReadOptions {
            max_file_bytes: 4,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("above the limit"), "{e}");
}

#[test]
fn full_corpus_when_present() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/imdb/aclImdb_v1.tar.gz");
    if !p.exists() {
        eprintln!("SKIPPED full_corpus_when_present: the IMDB archive is not at {} (tests on the mini corpus still ran)", p.display());
        return;
    }
    let t = std::time::Instant::now();
    let c = imdb::read(
        &p,
        &ReadOptions {
            include_unsup: true,
            ..Default::default()
        },
    )
    .unwrap()
    .counts();
    eprintln!(
        "read the full corpus ({c}) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        (c.train_pos, c.train_neg, c.test_pos, c.test_neg, c.unsup),
        (12_500, 12_500, 12_500, 12_500, 50_000)
    );
}

// ----- downloads from a loopback server ---------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Serve,
    /// Close the connection after this many bytes of the body (claiming the full length).
    Truncate(usize),
}

struct Server {
    url: String,
    ranges: Arc<Mutex<Vec<String>>>,
    hits: Arc<AtomicUsize>,
}

fn serve(body: Vec<u8>, mode: Mode) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/aclImdb_v1.tar.gz",
        listener.local_addr().unwrap()
    );
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (r2, h2) = (ranges.clone(), hits.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let n = h2.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut start = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    r2.lock().unwrap().push(v.trim().to_string());
                    start = v.trim().trim_end_matches('-').parse().unwrap_or(0);
                }
            }
            let rest = &body[start.min(body.len())..];
            let head = if start > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
                    rest.len(),
                    body.len() - 1,
                    body.len()
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    rest.len()
                )
            };
            let _ = stream.write_all(head.as_bytes());
            let send = match mode {
                // Only the first request is cut short.
                Mode::Truncate(k) if n == 0 => &rest[..k.min(rest.len())],
                _ => rest,
            };
            let _ = stream.write_all(send);
            let _ = stream.flush();
        }
    });
    Server { url, ranges, hits }
}

fn spec_for(url: &str, file: &Path) -> DownloadSpec {
    let (sha, md5) = file_digests(file).unwrap();
    DownloadSpec {
        url: url.to_string(),
        file_name: "aclImdb_v1.tar.gz".into(),
        sha256: sha,
        md5: Some(md5),
        size: Some(std::fs::metadata(file).unwrap().len()),
    }
}

#[test]
fn download_verifies_resumes_and_refuses_bad_files() {
    let body = std::fs::read(mini()).unwrap();
    let mut events = Vec::new();

    // A clean download.
    let s = serve(body.clone(), Mode::Serve);
    let dir = tempfile::tempdir().unwrap();
    let p = download(&spec_for(&s.url, &mini()), dir.path(), &mut |e| {
        events.push(e)
    })
    .unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), body);
    assert!(matches!(
        events.first(),
        Some(Progress::Start { done: 0, .. })
    ));
    assert!(events.contains(&Progress::Verifying));
    assert!(imdb::read(&p, &ReadOptions::default()).is_ok());
    // Already there and verified: no request.
    let before = s.hits.load(Ordering::SeqCst);
    download(&spec_for(&s.url, &mini()), dir.path(), &mut |_| {}).unwrap();
    assert_eq!(s.hits.load(Ordering::SeqCst), before);

    // Truncated transfer: a clear error, the partial file kept; the next run resumes.
    let s = serve(body.clone(), Mode::Truncate(body.len() / 3));
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_for(&s.url, &mini());
    let e = download(&spec, dir.path(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated") || e.contains("interrupted"), "{e}");
    assert!(!dir.path().join("aclImdb_v1.tar.gz").exists());
    let part = dir.path().join("aclImdb_v1.tar.gz.part");
    assert_eq!(
        std::fs::metadata(&part).unwrap().len() as usize,
        body.len() / 3
    );
    let p = download(&spec, dir.path(), &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), body);
    assert_eq!(
        s.ranges.lock().unwrap().as_slice(),
        [format!("{}-", body.len() / 3)]
    );

    // Wrong content of the right size: refused, nothing left behind.
    let mut wrong = body.clone();
    let mid = wrong.len() / 2;
    wrong[mid] ^= 0xff;
    let s = serve(wrong, Mode::Serve);
    let dir = tempfile::tempdir().unwrap();
    let e = download(&spec_for(&s.url, &mini()), dir.path(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("SHA-256") && e.contains("corrupt"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // Offline: a clear message that says where to put the file.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/aclImdb_v1.tar.gz", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let e = download(&spec_for(&url, &mini()), dir.path(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("could not reach") && e.contains("put it at"),
        "{e}"
    );
}
