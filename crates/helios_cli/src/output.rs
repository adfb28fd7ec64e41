//! Where `helios generate` writes its frames: an MP4 through `ffmpeg`, an animated GIF, or a folder
//! of PNGs (`frame_00000.png`, ...), chosen by the output path.
//!
//! Every output is written to a hidden temporary file (or folder) next to the target and moved into
//! place by [`FrameSink::finish`]. A sink dropped before that (an error) removes what it wrote, so
//! a failed run never leaves a half-written video behind.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, RgbImage, RgbaImage};
use tempfile::{Builder, NamedTempFile, TempDir, TempPath};

/// Frames per second of the written video.
pub const FPS: u32 = 24;

/// The kind of output a path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    /// `.mp4` through `ffmpeg` with this video codec.
    Mp4 { codec: &'static str },
    /// `.gif`.
    Gif,
    /// A folder of PNGs.
    Folder,
}

/// A checked output path: its kind, and a folder that exists and takes new files.
#[derive(Debug, Clone)]
pub struct OutputTarget {
    path: PathBuf,
    kind: OutputKind,
}

/// Whether `ffmpeg` runs here.
pub fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `libx264` when this `ffmpeg` has it, else `mpeg4`.
fn ffmpeg_codec() -> &'static str {
    let encoders = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .stderr(Stdio::null())
        .output();
    match encoders {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains(" libx264 ") => "libx264",
        _ => "mpeg4",
    }
}

impl OutputTarget {
    /// Checks `path` before any work: a known kind, `ffmpeg` for `.mp4`, and a folder that exists
    /// and can be written.
    pub fn check(path: &Path) -> Result<Self> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
        let kind = match ext.as_deref() {
            _ if path.is_dir() => OutputKind::Folder,
            None => OutputKind::Folder,
            Some("gif") => OutputKind::Gif,
            Some("mp4") if ffmpeg_available() => OutputKind::Mp4 {
                codec: ffmpeg_codec(),
            },
            Some("mp4") => bail!(
                "writing {} needs `ffmpeg` on PATH, and it was not found: install ffmpeg, or write a .gif \
                 or a folder of PNGs (a path without extension) instead",
                path.display()
            ),
            Some(other) => bail!(
                "cannot write `.{other}` ({}): use .mp4, .gif, or a path without extension for a folder of PNGs",
                path.display()
            ),
        };
        if kind == OutputKind::Folder && path.exists() && !path.is_dir() {
            bail!("{} exists and is not a folder", path.display());
        }
        let target = Self {
            path: path.to_path_buf(),
            kind,
        };
        let dir = target.staging_parent();
        if !dir.is_dir() {
            bail!(
                "cannot write {}: the folder {} does not exist",
                path.display(),
                dir.display()
            );
        }
        // Proves the folder takes new files; the probe is removed when dropped.
        Builder::new()
            .prefix(".helios-probe-")
            .tempfile_in(&dir)
            .with_context(|| {
                format!(
                    "cannot write {}: the folder {} is not writable",
                    path.display(),
                    dir.display()
                )
            })?;
        if target.kind == OutputKind::Folder && path.is_dir() {
            let old_frames = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with("frame_"));
            if old_frames {
                bail!(
                    "{} already holds frame_*.png files; pick an empty or new folder",
                    path.display()
                );
            }
        }
        Ok(target)
    }

    /// The checked path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder the temporary output is made in (same file system as the target, so the final
    /// move is a rename).
    fn staging_parent(&self) -> PathBuf {
        if self.kind == OutputKind::Folder && self.path.is_dir() {
            return self.path.clone();
        }
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn staging_prefix(&self) -> String {
        let name = self
            .path
            .file_name()
            .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
        format!(".{name}.part-")
    }

    /// A builder for the staging file: hidden, named after the target, and (on Unix) readable as
    /// any new file would be (`0o666` less the umask, not tempfile's `0o600`).
    fn staging_file(&self, suffix: &'static str) -> Result<NamedTempFile> {
        let prefix = self.staging_prefix();
        let mut builder = Builder::new();
        builder.prefix(&prefix).suffix(suffix);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        Ok(builder.tempfile_in(self.staging_parent())?)
    }

    /// Opens the temporary output for frames of `width x height`.
    pub fn open(&self, width: u32, height: u32) -> Result<Box<dyn FrameSink>> {
        match self.kind {
            OutputKind::Mp4 { codec } => {
                let tmp = self.staging_file(".mp4")?;
                Ok(Box::new(Mp4Sink::start(
                    tmp,
                    self.path.clone(),
                    codec,
                    width,
                    height,
                )?))
            }
            OutputKind::Gif => Ok(Box::new(GifSink::new(
                self.staging_file(".gif")?,
                self.path.clone(),
            )?)),
            OutputKind::Folder => {
                let tmp = Builder::new()
                    .prefix(&self.staging_prefix())
                    .tempdir_in(self.staging_parent())?;
                Ok(Box::new(FolderSink {
                    tmp,
                    target: self.path.clone(),
                    count: 0,
                }))
            }
        }
    }
}

/// Receives frames one by one.
pub trait FrameSink {
    /// Appends a frame.
    fn write(&mut self, frame: &RgbImage) -> Result<()>;
    /// Completes the output and moves it into place.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Raw RGB frames piped into `ffmpeg`.
struct Mp4Sink {
    tmp: Option<TempPath>,
    target: PathBuf,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

impl Mp4Sink {
    fn start(
        tmp: NamedTempFile,
        target: PathBuf,
        codec: &str,
        width: u32,
        height: u32,
    ) -> Result<Self> {
        let tmp = tmp.into_temp_path();
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
        ])
        .args([
            "-s",
            &format!("{width}x{height}"),
            "-r",
            &FPS.to_string(),
            "-i",
            "-",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:v", codec]);
        if codec == "mpeg4" {
            cmd.args(["-q:v", "3"]);
        }
        cmd.args(["-f", "mp4"]).arg(&tmp);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start ffmpeg")?;
        let stdin = child.stdin.take();
        Ok(Self {
            tmp: Some(tmp),
            target,
            child: Some(child),
            stdin,
        })
    }

    /// ffmpeg's error output, when it has stopped.
    fn ffmpeg_stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(err) = self.child.as_mut().and_then(|c| c.stderr.as_mut()) {
            let _ = err.read_to_string(&mut text);
        }
        text.trim().to_owned()
    }
}

impl FrameSink for Mp4Sink {
    fn write(&mut self, frame: &RgbImage) -> Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            bail!("ffmpeg's input is already closed")
        };
        if let Err(e) = stdin.write_all(frame.as_raw()) {
            self.stdin = None;
            if let Some(child) = self.child.as_mut() {
                let _ = child.wait();
            }
            bail!(
                "ffmpeg stopped taking frames ({e}): {}",
                self.ffmpeg_stderr()
            );
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.stdin = None; // closing the pipe ends ffmpeg's input
        let status = match self.child.as_mut() {
            Some(child) => child.wait().context("waiting for ffmpeg")?,
            None => bail!("ffmpeg is not running"),
        };
        if !status.success() {
            let err = self.ffmpeg_stderr();
            bail!("ffmpeg failed ({status}): {err}");
        }
        self.child = None;
        let Some(tmp) = self.tmp.take() else {
            bail!("the video is already finished")
        };
        tmp.persist(&self.target)
            .with_context(|| format!("cannot move the video to {}", self.target.display()))?;
        Ok(())
    }
}

impl Drop for Mp4Sink {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A buffered file whose write and flush errors are kept for [`GifSink::finish`] (the GIF encoder
/// writes its trailer, and the buffer is flushed, when the encoder is dropped).
struct CheckedFile {
    inner: BufWriter<File>,
    error: Rc<RefCell<Option<io::Error>>>,
}

impl CheckedFile {
    fn keep<T>(&self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r {
            self.error
                .borrow_mut()
                .get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
        }
        r
    }
}

impl Write for CheckedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        self.keep(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.inner.flush();
        self.keep(r)
    }
}

impl Drop for CheckedFile {
    fn drop(&mut self) {
        let r = self.inner.flush();
        let _ = self.keep(r);
    }
}

/// An animated GIF at [`FPS`], looping.
struct GifSink {
    encoder: Option<GifEncoder<CheckedFile>>,
    error: Rc<RefCell<Option<io::Error>>>,
    tmp: TempPath,
    target: PathBuf,
}

impl GifSink {
    fn new(tmp: NamedTempFile, target: PathBuf) -> Result<Self> {
        let (file, tmp) = tmp.into_parts();
        let error = Rc::new(RefCell::new(None));
        let out = CheckedFile {
            inner: BufWriter::new(file),
            error: error.clone(),
        };
        // Speed 10 of 1..=30: a good palette at a fraction of the slowest setting's time.
        let mut encoder = GifEncoder::new_with_speed(out, 10);
        encoder.set_repeat(Repeat::Infinite)?;
        Ok(Self {
            encoder: Some(encoder),
            error,
            tmp,
            target,
        })
    }
}

impl FrameSink for GifSink {
    fn write(&mut self, frame: &RgbImage) -> Result<()> {
        let Some(encoder) = self.encoder.as_mut() else {
            bail!("the GIF is already finished")
        };
        let rgba: RgbaImage = image::DynamicImage::ImageRgb8(frame.clone()).into_rgba8();
        let delay = Delay::from_numer_denom_ms(1000, FPS);
        encoder
            .encode_frame(Frame::from_parts(rgba, 0, 0, delay))
            .context("writing a GIF frame")?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        drop(self.encoder.take()); // writes the trailer and flushes
        if let Some(e) = self.error.borrow_mut().take() {
            return Err(e).context("writing the GIF");
        }
        let GifSink { tmp, target, .. } = *self;
        tmp.persist(&target)
            .with_context(|| format!("cannot move the GIF to {}", target.display()))?;
        Ok(())
    }
}

/// `frame_00000.png`, `frame_00001.png`, ... in a folder.
struct FolderSink {
    tmp: TempDir,
    target: PathBuf,
    count: usize,
}

/// The name of frame `i` in a folder output.
pub fn frame_name(i: usize) -> String {
    format!("frame_{i:05}.png")
}

impl FrameSink for FolderSink {
    fn write(&mut self, frame: &RgbImage) -> Result<()> {
        let path = self.tmp.path().join(frame_name(self.count));
        frame
            .save_with_format(&path, image::ImageFormat::Png)
            .with_context(|| format!("writing {}", path.display()))?;
        self.count += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        if self.target.is_dir() {
            // The staging folder sits inside the target: move the frames up, then it is removed.
            for i in 0..self.count {
                let name = frame_name(i);
                std::fs::rename(self.tmp.path().join(&name), self.target.join(&name))
                    .with_context(|| format!("moving {name} into {}", self.target.display()))?;
            }
            return Ok(());
        }
        let FolderSink { tmp, target, .. } = *self;
        let staged = tmp.keep();
        if let Err(e) = std::fs::rename(&staged, &target) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e)
                .with_context(|| format!("cannot move the frames to {}", target.display()));
        }
        Ok(())
    }
}
