import Crypto
import Foundation
import LetheFiles

/// SHA-256 of files and bytes, hex-encoded.
public enum Digest {
    public static func sha256(_ bytes: some Sequence<UInt8>) -> String {
        hex(SHA256.hash(data: Array(bytes)))
    }

    public static func sha256(_ string: String) -> String { sha256(Array(string.utf8)) }

    /// Streams the file in 4 MiB chunks. Only a regular file is read: a FIFO or a device such as
    /// `/dev/zero` is refused at once (`FileError`) instead of being hashed forever.
    public static func sha256(file path: String, followLinks: Bool = true) throws -> String {
        var hasher = SHA256()
        try RegularFile.chunks(path, followLinks: followLinks) { hasher.update(bufferPointer: $0) }
        return hex(hasher.finalize())
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
