#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a path cannot be used, in words a user can act on (never a raw NSError text).
public struct FileError: Error, Sendable, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String

    public init(_ message: String, path: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }

    /// The reason for an `errno` from a call on `path`.
    static func errno(_ code: Int32, path: String, doing what: String) -> FileError {
        switch code {
        case ENOENT: return FileError("no such file or directory", path: path)
        case EACCES, EPERM: return FileError("permission denied (\(what))", path: path)
        case ELOOP: return FileError("is a symbolic link, which is not followed here", path: path)
        case ENOTDIR: return FileError("a component of the path is not a directory", path: path)
        case ENOSPC: return FileError("no space left on the device (\(what))", path: path)
        case EROFS: return FileError("the file system is read-only (\(what))", path: path)
        default: return FileError("cannot \(what): \(String(cString: strerror(code)))", path: path)
        }
    }
}

/// What kind of thing a path names, from `lstat` (a symbolic link is reported as one) or `stat`.
public enum FileKind: Sendable, Equatable {
    case regular, directory, symlink, fifo, characterDevice, blockDevice, socket, other

    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symlink
        case S_IFIFO: self = .fifo
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        case S_IFSOCK: self = .socket
        default: self = .other
        }
    }

    /// "a directory", "a FIFO (named pipe)", ... for messages.
    public var phrase: String {
        switch self {
        case .regular: return "a regular file"
        case .directory: return "a directory"
        case .symlink: return "a symbolic link"
        case .fifo: return "a FIFO (named pipe)"
        case .characterDevice: return "a character device"
        case .blockDevice: return "a block device"
        case .socket: return "a socket"
        case .other: return "not a regular file"
        }
    }

    /// The kind of `path`, or nil when it does not exist. `followLinks: false` reports links as such.
    public static func of(_ path: String, followLinks: Bool = true) -> FileKind? {
        var st = stat()
        let rc = followLinks ? stat(path, &st) : lstat(path, &st)
        return rc == 0 ? FileKind(mode: st.st_mode) : nil
    }
}

/// Reading files that may come from anywhere: only regular files are opened for their bytes (a FIFO,
/// a device such as `/dev/zero` or a directory is refused at once instead of hanging or filling memory),
/// checked on the open descriptor so nothing can be swapped in between the check and the read.
public enum RegularFile {
    /// Opens `path` for reading, requiring a regular file. `followLinks: false` refuses a symbolic
    /// link as the last component. The caller closes the descriptor.
    public static func open(_ path: String, followLinks: Bool = true) throws(FileError) -> (fd: Int32, size: Int) {
        var flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC
        if !followLinks { flags |= O_NOFOLLOW }
        let fd = Glibc.open(path, flags)
        if fd < 0 {
            let code = Glibc.errno
            if code == ELOOP && !followLinks {
                throw FileError("is a symbolic link; links are not followed here", path: path)
            }
            if code == EISDIR { throw FileError("is a directory, expected a file", path: path) }
            throw FileError.errno(code, path: path, doing: "open it for reading")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let code = Glibc.errno
            close(fd)
            throw FileError.errno(code, path: path, doing: "read its status")
        }
        let kind = FileKind(mode: st.st_mode)
        guard kind == .regular else {
            close(fd)
            if kind == .directory { throw FileError("is a directory, expected a file", path: path) }
            throw FileError("is \(kind.phrase), not a regular file; refusing to read it", path: path)
        }
        // Back to blocking reads (O_NONBLOCK was only there so opening a FIFO could not wait for a writer).
        _ = fcntl(fd, F_SETFL, O_RDONLY)
        return (fd, Int(st.st_size))
    }

    /// The whole content of the regular file at `path`; files larger than `limit` bytes are refused
    /// before anything is read.
    public static func read(_ path: String, limit: Int = Int.max, followLinks: Bool = true) throws(FileError) -> [UInt8]
    {
        let (fd, size) = try open(path, followLinks: followLinks)
        defer { close(fd) }
        guard size <= limit else {
            throw FileError("is \(size) bytes, more than the \(limit) bytes allowed for it", path: path)
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw FileError.errno(Glibc.errno, path: path, doing: "read it")
            }
            if n == 0 { break }  // the file shrank while being read
            done += n
        }
        return done == size ? bytes : Array(bytes[..<done])
    }

    /// Calls `body` with consecutive chunks of the regular file at `path` (for hashing large files).
    public static func chunks(
        _ path: String, chunkSize: Int = 4 << 20, followLinks: Bool = true,
        _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let (fd, _) = try open(path, followLinks: followLinks)
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = Glibc.read(fd, buffer.baseAddress!, chunkSize)
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw FileError.errno(Glibc.errno, path: path, doing: "read it")
            }
            if n == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        }
    }

    /// Checks that `path` names a regular file (following links), with a message for anything else.
    public static func require(_ path: String) throws(FileError) {
        guard let kind = FileKind.of(path) else {
            throw FileError.errno(Glibc.errno, path: path, doing: "find it")
        }
        if kind == .directory { throw FileError("is a directory, expected a file", path: path) }
        guard kind == .regular else { throw FileError("is \(kind.phrase), not a regular file", path: path) }
    }

    /// Checks that `path` names a directory (following links).
    public static func requireDirectory(_ path: String) throws(FileError) {
        guard let kind = FileKind.of(path) else {
            throw FileError.errno(Glibc.errno, path: path, doing: "find it")
        }
        guard kind == .directory else { throw FileError("is \(kind.phrase), expected a directory", path: path) }
    }
}
