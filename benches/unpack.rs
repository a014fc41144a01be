//! Unpacking a 50 MB, 2,000-file release package: fleetup against `unzip -q` on the same
//! package, side by side in one run (target: within 1.2× of unzip); and the same files as
//! a `.tar.gz` (EMQX 5.x), fleetup against `tar -xzf` (fleetup reads a tarball twice:
//! once to vet every header, once to extract).
//!
//! Measured three ways, interleaved so machine noise hits all alike: fleetup's unpack
//! function in-process (staging, vetting, rename), the whole `fleetup node unpack`
//! command (adds copying the package into the store, locking and the state file), and
//! `unzip -q` into an empty directory.
//!
//! Run: `cargo bench --bench unpack` (needs `unzip`).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use zip::write::SimpleFileOptions;

const FILES: usize = 2000;
const FILE_BYTES: usize = 25_000;
const RUNS: usize = 7;

fn make_package(path: &Path) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    // Compressible but not trivial content, like beam files and configs.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..FILES {
        z.start_file(format!("lib/app-{}/ebin/mod_{i:04}.beam", i % 40), opts)
            .unwrap();
        let mut buf = Vec::with_capacity(FILE_BYTES);
        while buf.len() < FILE_BYTES {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let word =
                ["call", "erlang", "module", "function", "gen_server", "ok"][(seed % 6) as usize];
            write!(buf, "{word}_{} ", seed % 97).unwrap();
        }
        z.write_all(&buf).unwrap();
    }
    z.finish().unwrap();
}

/// The same files as a `.tar.gz`, compressed at gzip's default level.
fn make_tarball(zip_pkg: &Path, path: &Path) {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(zip_pkg).unwrap()).unwrap();
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    );
    let mut b = tar::Builder::new(gz);
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut data).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let name = f.name().unwrap().into_owned();
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

fn main() {
    if Command::new("unzip").arg("-v").output().is_err() {
        eprintln!("unzip is not installed (apt-get install unzip): nothing to compare against");
        std::process::exit(1);
    }
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let pkg = repo.join("emqx-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip");
    make_package(&pkg);
    let size = std::fs::metadata(&pkg).unwrap().len();
    println!(
        "package: {FILES} files, {:.1} MB unpacked, {:.1} MB compressed",
        (FILES * FILE_BYTES) as f64 / 1e6,
        size as f64 / 1e6
    );

    let (mut lib, mut cli, mut unzip) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        // Each tool goes first, second and third in turn: on ext4 the later runs pay for
        // the inodes the earlier ones just allocated.
        for turn in 0..3 {
            match (turn + run) % 3 {
                0 => lib.push(time_lib(&pkg, &t.path().join(format!("lib-{run}")))),
                1 => cli.push(time_cli(&repo, &t.path().join(format!("node-{run}")))),
                _ => unzip.push(time_unzip(&pkg, &t.path().join(format!("unzip-{run}")))),
            }
        }
    }
    let secs = |v: &[Duration]| v.iter().map(Duration::as_secs_f64).collect::<Vec<f64>>();
    let (lib, cli, unzip) = (secs(&lib), secs(&cli), secs(&unzip));
    println!(
        "unzip -q:                  {} ms",
        common::spread(&unzip, 1000.0, 0)
    );
    println!(
        "fleetup unpack (library):  {} ms  ratio {} (target <= 1.20)",
        common::spread(&lib, 1000.0, 0),
        common::ratios(&lib, &unzip)
    );
    println!(
        "fleetup node unpack (CLI): {} ms  ratio {} (target <= 1.20)",
        common::spread(&cli, 1000.0, 0),
        common::ratios(&cli, &unzip)
    );
    let what = format!(
        "a {:.0} MB, {FILES}-file package ({:.0} MB zip)",
        (FILES * FILE_BYTES) as f64 / 1e6,
        size as f64 / 1e6
    );
    common::row([
        &format!("unpack {what}: the library function"),
        &format!("{} ms", common::spread(&lib, 1000.0, 0)),
        &format!("`unzip -q` {} ms", common::spread(&unzip, 1000.0, 0)),
        &common::ratios(&lib, &unzip),
        "≤ 1.2",
    ]);
    common::row([
        &format!("unpack {what}: the whole `fleetup node unpack`"),
        &format!("{} ms", common::spread(&cli, 1000.0, 0)),
        &format!("`unzip -q` {} ms", common::spread(&unzip, 1000.0, 0)),
        &common::ratios(&cli, &unzip),
        "≤ 1.2",
    ]);

    // The same files as a .tar.gz, against tar -xzf.
    let tgz = t.path().join("emqx-5.1.0-ubuntu22.04-amd64.tar.gz");
    make_tarball(&pkg, &tgz);
    let (mut lib, mut tar) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        for turn in 0..2 {
            if (turn + run) % 2 == 0 {
                lib.push(time_lib(&tgz, &t.path().join(format!("tlib-{run}"))));
            } else {
                tar.push(time_tar(&tgz, &t.path().join(format!("tar-{run}"))));
            }
        }
    }
    let (lib, tar) = (secs(&lib), secs(&tar));
    let mb = std::fs::metadata(&tgz).unwrap().len() as f64 / 1e6;
    println!(
        "tarball, {mb:.1} MB compressed: tar -xzf {} ms, fleetup unpack (library) {} ms  ratio {}",
        common::spread(&tar, 1000.0, 0),
        common::spread(&lib, 1000.0, 0),
        common::ratios(&lib, &tar)
    );
    common::row([
        &format!("unpack the same files as a {mb:.0} MB `.tar.gz`: the library function"),
        &format!("{} ms", common::spread(&lib, 1000.0, 0)),
        &format!("`tar -xzf` {} ms", common::spread(&tar, 1000.0, 0)),
        &common::ratios(&lib, &tar),
        "none set",
    ]);
}

fn time_tar(pkg: &Path, d: &Path) -> Duration {
    std::fs::create_dir_all(d).unwrap();
    let start = Instant::now();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(pkg)
        .arg("-C")
        .arg(d)
        .status()
        .unwrap();
    let e = start.elapsed();
    assert!(st.success());
    e
}

fn time_lib(pkg: &Path, d: &Path) -> Duration {
    std::fs::create_dir_all(d).unwrap();
    let start = Instant::now();
    fleetup::store::unpack::unpack(
        pkg,
        &d.join(".staging"),
        &d.join("tree"),
        Default::default(),
    )
    .unwrap();
    start.elapsed()
}

fn time_cli(repo: &Path, root: &Path) -> Duration {
    let start = Instant::now();
    let st = Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .args(["node", "unpack", "4.4.16", "--root"])
        .arg(root)
        .arg("--repo")
        .arg(repo)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    let d = start.elapsed();
    assert!(st.success());
    d
}

fn time_unzip(pkg: &Path, d: &Path) -> Duration {
    let start = Instant::now();
    let st = Command::new("unzip")
        .arg("-q")
        .arg(pkg)
        .arg("-d")
        .arg(d)
        .status()
        .unwrap();
    let e = start.elapsed();
    assert!(st.success());
    e
}
