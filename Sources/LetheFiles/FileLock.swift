#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An exclusive advisory lock on a lock file (`flock(2)`), held until `release()` or until the
/// process ends: the kernel drops the lock of a process that dies, even by `kill -9`, so a lock left
/// behind by a killed process is free again at once. The lock file itself stays (deleting it would let
/// a third process lock a new file while a second still holds the old one).
///
/// On local file systems the lock is exact. Linux's NFS client emulates `flock` with POSIX byte-range
/// locks, which NFSv4 (and NFSv3 with lockd) enforce across machines; file systems without working
/// locks fail `flock` with an error, which is reported rather than ignored.
public final class FileLock: @unchecked Sendable {
    public let path: String
    private var fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    /// Takes the lock, waiting for another holder when there is one; `waiting` is called once, before
    /// the wait, with the holder's process id as the lock file records it (nil when unknown).
    public static func acquire(_ path: String, waiting: (Int?) -> Void = { _ in }) throws(FileError) -> FileLock {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw FileError.errno(Glibc.errno, path: path, doing: "create the lock file") }
        var st = stat()
        if fstat(fd, &st) != 0 || FileKind(mode: st.st_mode) != .regular {
            close(fd)
            throw FileError("is not a regular file; cannot use it as a lock file", path: path)
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = Glibc.errno
            guard code == EWOULDBLOCK || code == EINTR else {
                close(fd)
                throw FileError.errno(code, path: path, doing: "lock it")
            }
            waiting(holder(fd))
            while flock(fd, LOCK_EX) != 0 {
                let code = Glibc.errno
                if code == EINTR { continue }
                close(fd)
                throw FileError.errno(code, path: path, doing: "lock it")
            }
        }
        // Record the holder for the messages of processes that wait.
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress!, pid.count, 0) }
        return FileLock(path: path, fd: fd)
    }

    /// Takes the lock if it is free; nil when another process (or another open of the file) holds it.
    public static func attempt(_ path: String) throws(FileError) -> FileLock? {
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if Glibc.errno == ENOENT { return try acquire(path) }
            throw FileError.errno(Glibc.errno, path: path, doing: "open the lock file")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            return nil
        }
        return FileLock(path: path, fd: fd)
    }

    /// The process id a lock file names, if it names one.
    public static func holder(of path: String) -> Int? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return holder(fd)
    }

    private static func holder(_ fd: Int32) -> Int? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 32, 0) }
        guard n > 0 else { return nil }
        return Int(String(decoding: buffer[..<n], as: UTF8.self).trimmingWhitespace())
    }

    public func release() {
        guard fd >= 0 else { return }
        _ = flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s = s.dropFirst() }
        while let c = s.last, c.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

/// Paths a run directory names (in its manifest), confined to that directory.
public enum Confined {
    /// `dir + "/" + name` when `name` is a plain relative path inside `dir`: no absolute path, no `.`,
    /// `..` or empty component, and no symbolic link on the way (every directory on the way must be a
    /// real directory inside `dir`). The last component is not checked here; open it with
    /// `RegularFile.open(_:followLinks: false)`.
    public static func path(_ name: String, in dir: String) throws(FileError) -> String {
        guard !name.isEmpty, !name.hasPrefix("/"), !name.utf8.contains(0) else {
            throw FileError("is not a path inside the run directory", path: name)
        }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw FileError(
                "names a path outside the run directory (or a '.' or empty component); refusing to follow it",
                path: name)
        }
        var current = dir
        for part in parts.dropLast() {
            current += "/" + part
            guard let kind = FileKind.of(current, followLinks: false) else { return dir + "/" + name }
            guard kind == .directory else {
                throw FileError(
                    "leads through \(kind.phrase) (\(part)); only real directories inside the run are followed",
                    path: name)
            }
        }
        return dir + "/" + name
    }
}
