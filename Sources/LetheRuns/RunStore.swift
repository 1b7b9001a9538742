import Foundation
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
            throw NotFound(description: "\(reference): no such run directory, and not a config hash (hex, at least 4 characters)")
        }
        let matches = runs().filter { URL(fileURLWithPath: $0).lastPathComponent.hasPrefix(reference.lowercased()) }
        switch matches.count {
        case 1: return matches[0]
        case 0: throw NotFound(description: "no finished run in \(root)/ has a config hash starting \(reference)")
        default: throw NotFound(description: "\(reference) is ambiguous in \(root)/: \(matches.map { URL(fileURLWithPath: $0).lastPathComponent.prefix(16) + "…" }.joined(separator: ", "))")
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
        guard let data = FileManager.default.contents(atPath: dir + "/" + name) else { return nil }
        do { return try JSONParser.parse([UInt8](data), file: dir + "/" + name) } catch { throw RunError("\(error)") }
    }
}
