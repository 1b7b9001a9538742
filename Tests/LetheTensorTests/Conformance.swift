import Foundation
import LetheJSON

/// The vendored suites in `Tests/Conformance/` (see LetheSpecTests' Conformance), or `LETHE_CONFORMANCE_DIR`.
enum Conformance {
    static let root: URL = {
        if let dir = ProcessInfo.processInfo.environment["LETHE_CONFORMANCE_DIR"] { return URL(fileURLWithPath: dir) }
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return repo.appendingPathComponent("Tests/Conformance")
    }()

    static func bytes(_ relative: String) throws -> [UInt8] {
        Array(try Data(contentsOf: root.appendingPathComponent(relative)))
    }
    static func json(_ relative: String) throws -> JSONValue {
        try JSONParser.parse(try bytes(relative), file: relative)
    }
}

func hexBytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = hex.makeIterator()
    while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
    return out
}
