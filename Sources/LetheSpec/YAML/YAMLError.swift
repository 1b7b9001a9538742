/// A YAML document that could not be loaded, with the place that broke it.
public struct YAMLError: Error, Sendable, CustomStringConvertible {
    public var mark: SourceMark
    public var message: String
    /// Where in the document tree the problem is (member names and indices), when known.
    public var path: [String]

    public init(_ message: String, at mark: SourceMark, path: [String] = []) {
        self.mark = mark
        self.message = message
        self.path = path
    }

    public var description: String { "\(mark): \(message)" }
}

/// Limits that keep a hostile or mistaken document from exhausting memory.
public struct YAMLLimits: Sendable {
    /// Deepest nesting of sequences and mappings.
    public var maxDepth: Int
    /// Nodes that aliases may add in one document (a "billion laughs" document trips this).
    public var maxAliasNodes: Int
    /// What to do with a tag Lethe does not know (`!foo`, `!!binary`).
    public var unknownTags: UnknownTagPolicy

    public enum UnknownTagPolicy: Sendable { case reject, ignore }
    /// Integer literals past Int64 are errors (true) or become floats as JSON would have them (false).
    public var exactIntegers: Bool

    public init(
        maxDepth: Int = 64, maxAliasNodes: Int = 100_000, unknownTags: UnknownTagPolicy = .reject,
        exactIntegers: Bool = true
    ) {
        self.maxDepth = maxDepth
        self.maxAliasNodes = maxAliasNodes
        self.unknownTags = unknownTags
        self.exactIntegers = exactIntegers
    }

    /// Run specs: small documents, strict tags.
    public static let spec = YAMLLimits()
}
