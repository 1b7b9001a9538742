import Foundation
import LetheFiles
import LetheJSON
import LetheSpec

/// A run's directory, `runs/<config-hash>/`. It is built in a staging folder beside it
/// (`<hash>.partial`) and renamed into place only when complete, with `manifest.json` (every file's
/// SHA-256) written last: a run that was interrupted never looks finished, and one that finished is
/// reused by its hash.
///
/// Only the holder of the stage's lock (`StageLock`, `runs/<hash>.lock`) builds a stage, so the staging
/// folder is this process's alone, and a finished directory is never deleted or replaced: `finish()`
/// renames the staging folder into place only where nothing is, and fails otherwise.
public struct RunDirectory: Sendable {
    public let finalPath: String
    public let stagingPath: String

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "\(path): \(message)" }
    }

    /// A finished run at `path`, if there is one (its manifest exists). Whether it is intact is
    /// `RunRecord.verify()`'s question.
    public static func finished(_ path: String) -> Bool {
        FileKind.of(path + "/manifest.json", followLinks: false) == .regular
    }

    /// The staging folder's subfolder that holds a training loop's resume state (`resume/`): kept when
    /// an interrupted attempt is cleared, removed before the manifest is written, so it never reaches a
    /// finished run.
    public static let resumeFolder = "resume"

    /// Starts a fresh staging folder for `finalPath`; this process must hold the stage's lock
    /// (`StageLock.holding`), or the call fails. A staging folder left by an interrupted attempt (whose
    /// process is gone: it held the lock) is cleared, all but its resume state.
    public init(finalPath: String) throws(Failure) {
        self.finalPath = finalPath
        self.stagingPath = finalPath + ".partial"
        do { try StageLock.requireHeld(finalPath) } catch { throw Failure(path: finalPath, message: error.description) }
        if FileKind.of(finalPath, followLinks: false) != nil {
            throw Failure(
                path: finalPath,
                message:
                    "already exists (a finished run, or a folder Lethe did not finish); it is never replaced or deleted: move it out of the runs folder to run the stage again"
            )
        }
        let fm = FileManager.default
        do {
            switch FileKind.of(stagingPath, followLinks: false) {
            case .directory?:
                for name in try fm.contentsOfDirectory(atPath: stagingPath) where name != Self.resumeFolder {
                    try fm.removeItem(atPath: stagingPath + "/" + name)
                }
            case nil: break
            default: try fm.removeItem(atPath: stagingPath)
            }
            try fm.createDirectory(atPath: stagingPath, withIntermediateDirectories: true)
        } catch {
            throw Failure(path: stagingPath, message: "cannot create the run directory: \(FileSystem.reason(error))")
        }
    }

    public func path(_ name: String) -> String { stagingPath + "/" + name }

    /// The number of training steps whose state an interrupted attempt saved in the staging folder
    /// `stagingPath` (the step a new attempt resumes from); nil when it saved none.
    public static func resumableStep(_ stagingPath: String) -> Int? {
        (try? RunStore.json(stagingPath + "/" + resumeFolder, "state.json"))?.flatMap { $0["step"]?.intValue }
    }

    public func write(_ name: String, bytes: [UInt8]) throws(Failure) {
        do {
            let url = URL(fileURLWithPath: path(name))
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url, options: .atomic)
        } catch {
            throw Failure(path: path(name), message: "cannot write: \(FileSystem.reason(error))")
        }
    }

    public func write(_ name: String, text: String) throws(Failure) { try write(name, bytes: Array(text.utf8)) }

    /// JSON in a stable, diff-friendly form: sorted keys, two-space indent.
    public func write(_ name: String, json: JSONValue) throws(Failure) {
        try write(name, text: JSONText.pretty(json) + "\n")
    }

    /// Files whose content differs from run to run by nature (wall-clock timings): listed in the
    /// manifest by name, not hashed, so two runs of one spec have identical manifests.
    public static let volatileFiles: Set<String> = ["timing.jsonl"]

    /// Writes the manifest (SHA-256 of every file but the volatile ones, sorted by name) and moves the
    /// run into place. Fails, leaving everything where it is, when something already stands there.
    public func finish() throws(Failure) {
        if FileKind.of(path(Self.resumeFolder), followLinks: false) != nil {
            do { try FileManager.default.removeItem(atPath: path(Self.resumeFolder)) } catch {
                throw Failure(path: path(Self.resumeFolder), message: "cannot remove: \(FileSystem.reason(error))")
            }
        }
        let files: [String]
        do { files = try RunRecord.files(in: stagingPath) } catch {
            throw Failure(path: stagingPath, message: error.description)
        }
        var entries = JSONObject()
        for f in files.sorted() where !Self.volatileFiles.contains(f) && f != "manifest.json" {
            do { entries[f] = .string(try Digest.sha256(file: stagingPath + "/" + f)) } catch {
                throw Failure(path: stagingPath + "/" + f, message: "cannot hash: \(error)")
            }
        }
        let volatile = files.filter(Self.volatileFiles.contains).sorted().map(JSONValue.string)
        try write(
            "manifest.json", json: .object(JSONObject([("files", .object(entries)), ("unhashed", .array(volatile))])))
        // rename(2) refuses to replace a non-empty directory; the lock keeps cooperating writers away,
        // and the check before it catches anything else (a file, an empty folder someone made).
        if FileKind.of(finalPath, followLinks: false) != nil {
            throw Failure(
                path: finalPath,
                message: "already exists; the finished run was left in \(stagingPath) (nothing was replaced)")
        }
        if rename(stagingPath, finalPath) != 0 {
            let reason = String(cString: strerror(errno))
            throw Failure(
                path: finalPath,
                message: "cannot move the finished run into place (\(reason)); it was left in \(stagingPath)")
        }
    }
}

/// Stable JSON text for files people diff: members sorted, two-space indent, one item per line for
/// nested values.
public enum JSONText {
    public static func pretty(_ v: JSONValue, indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent)
        let inner = String(repeating: "  ", count: indent + 1)
        switch v {
        case .array(let items) where items.isEmpty: return "[]"
        case .object(let o) where o.isEmpty: return "{}"
        case .array(let items) where items.allSatisfy({ $0.arrayValue == nil && $0.objectValue == nil }):
            return "[" + items.map(scalar).joined(separator: ", ") + "]"
        case .array(let items):
            return "[\n" + items.map { inner + pretty($0, indent: indent + 1) }.joined(separator: ",\n") + "\n" + pad
                + "]"
        case .object(let o):
            let keys = o.keys.sorted { $0.utf16.lexicographicallyPrecedes($1.utf16) }
            return "{\n"
                + keys.map { inner + CanonicalJSON.quoted($0) + ": " + pretty(o[$0]!, indent: indent + 1) }.joined(
                    separator: ",\n") + "\n" + pad + "}"
        default:
            return scalar(v)
        }
    }

    /// One value in canonical (RFC 8785) form; "null" for a value JSON cannot hold.
    public static func scalar(_ v: JSONValue) -> String { (try? CanonicalJSON.string(v)) ?? "null" }

    /// One JSON object per line (JSON Lines), members sorted.
    public static func line(_ v: JSONValue) -> String { scalar(v) }
}
