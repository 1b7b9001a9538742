/// One problem with a spec, located as precisely as the source allows.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable { case error, warning }

    public var mark: SourceMark?
    public var pointer: JSONPointer
    public var message: String
    public var severity: Severity

    public init(_ message: String, at pointer: JSONPointer, mark: SourceMark?, severity: Severity = .error) {
        self.message = message
        self.pointer = pointer
        self.mark = mark
        self.severity = severity
    }

    /// `FILE:LINE:COL: <json-pointer>: <message>`, the shape compilers and editors understand.
    public var description: String {
        let location = mark.map { "\($0): " } ?? ""
        let prefix = severity == .warning ? "warning: " : ""
        return "\(location)\(pointer): \(prefix)\(message)"
    }
}

/// Everything wrong with a spec, not just the first thing.
extension Diagnostic {
    /// Diagnostics ordered by where they point in the source (file, line, column, then pointer), so a
    /// report reads top to bottom like the file.
    public static func inSourceOrder(_ diagnostics: [Diagnostic]) -> [Diagnostic] {
        diagnostics.enumerated().sorted { a, b in
            let ma = a.element.mark
            let mb = b.element.mark
            let ka = (ma?.file ?? "", ma?.line ?? 0, ma?.column ?? 0)
            let kb = (mb?.file ?? "", mb?.line ?? 0, mb?.column ?? 0)
            if ka != kb { return ka < kb }
            return a.offset < b.offset
        }.map(\.element)
    }
}

public struct SpecError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    /// The spec file itself could not be read (missing, not a regular file, no permission): an
    /// environment problem rather than an invalid spec.
    public var unreadable = false

    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }

    public init(_ message: String, at pointer: JSONPointer = .root, mark: SourceMark?) {
        self.diagnostics = [Diagnostic(message, at: pointer, mark: mark)]
    }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
