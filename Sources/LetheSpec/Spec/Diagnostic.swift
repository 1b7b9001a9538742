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
