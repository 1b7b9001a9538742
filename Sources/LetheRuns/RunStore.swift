import Foundation
import LetheFiles
import LetheJSON
import LetheSpec

/// Finished run directories under a runs folder, found by path, full hash or unique hash prefix.
public struct RunStore {
    public let root: String

    public init(root: String = "runs") { self.root = root }

    public struct NotFound: Error, CustomStringConvertible {
        public var description: String
    }

    /// `reference` is a run directory, a config hash, or a prefix of one (at least 4 characters).
    public func locate(_ reference: String) throws(NotFound) -> String {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: reference, isDirectory: &isDir), isDir.boolValue {
            guard RunDirectory.finished(reference) else {
                throw NotFound(description: "\(reference) is not a finished run directory (it has no manifest.json)")
            }
            return reference
        }
        guard reference.count >= 4, reference.allSatisfy(\.isHexDigit) else {
            throw NotFound(
                description: "\(reference): no such run directory, and not a config hash (hex, at least 4 characters)")
        }
        let matches = runs().filter { URL(fileURLWithPath: $0).lastPathComponent.hasPrefix(reference.lowercased()) }
        switch matches.count {
        case 1: return matches[0]
        case 0: throw NotFound(description: "no finished run in \(root)/ has a config hash starting \(reference)")
        default:
            throw NotFound(
                description:
                    "\(reference) is ambiguous in \(root)/: \(matches.map { URL(fileURLWithPath: $0).lastPathComponent.prefix(16) + "…" }.joined(separator: ", "))"
            )
        }
    }

    /// Every finished run directory, sorted by name (its hash).
    public func runs() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.filter { $0.count == 64 && $0.allSatisfy(\.isHexDigit) }.sorted()
            .map { root + "/" + $0 }.filter(RunDirectory.finished)
    }

    /// A JSON file of a run, parsed; nil when it is absent.
    public static func json(_ dir: String, _ name: String) throws -> JSONValue? {
        let file = dir + "/" + name
        guard FileKind.of(file, followLinks: false) != nil else { return nil }
        do {
            return try JSONParser.parse(try RegularFile.read(file, limit: jsonLimit, followLinks: false), file: file)
        } catch {
            throw RunError("\(error)")
        }
    }

    /// The largest JSON file of a run that is read (eval.json and splits.json are well below it).
    static let jsonLimit = 256 << 20

    /// Checks a finished stage before it is reused: every file against the manifest, nothing extra,
    /// the directory's name against its recorded identity. Each directory is checked once per process
    /// (a checkpoint of a few MB hashes in milliseconds; the check is repeated when the manifest
    /// changes).
    public static func verifyForReuse(_ dir: String) throws {
        let stamp = manifestStamp(dir)
        if verified.lock.withLock({ verified.stamps[dir] == stamp }) { return }
        let record: RunRecord
        do { record = try RunRecord(dir) } catch { throw RunError("\(error)", kind: .verification) }
        let problems = record.verify()
        guard problems.isEmpty else {
            throw RunError(
                """
                \(dir) is a finished run that does not verify, so it is not reused:
                \(problems.map { "  " + $0 }.joined(separator: "\n"))
                Move it out of the runs folder (Lethe never deletes a finished run) and run again to rebuild the stage.
                """, kind: .verification)
        }
        verified.lock.withLock { verified.stamps[dir] = stamp }
    }

    private final class Verified: @unchecked Sendable {
        let lock = NSLock()
        var stamps: [String: String] = [:]
    }
    private static let verified = Verified()

    private static func manifestStamp(_ dir: String) -> String {
        var st = stat()
        guard lstat(dir + "/manifest.json", &st) == 0 else { return "" }
        return "\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec):\(st.st_mtim.tv_nsec)"
    }
}
