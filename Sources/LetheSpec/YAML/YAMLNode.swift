/// A YAML node after scalar resolution (YAML 1.2 core schema), with the place it came from.
///
/// Mappings keep their source order: a spec printed back reads like the file that was written.
public struct YAMLNode: Sendable, Equatable {
    public indirect enum Value: Sendable, Equatable {
        case null
        case bool(Bool)
        case int(Int)
        case float(Double)
        case string(String)
        case sequence([YAMLNode])
        case mapping([Pair])
    }

    public struct Pair: Sendable, Equatable {
        public var key: YAMLNode
        public var value: YAMLNode
        public init(key: YAMLNode, value: YAMLNode) {
            self.key = key
            self.value = value
        }
    }

    public var value: Value
    public var mark: SourceMark
    /// The scalar's text as written (without quotes); nil for collections.
    public var text: String?

    public init(_ value: Value, mark: SourceMark, text: String? = nil) {
        self.value = value
        self.mark = mark
        self.text = text
    }

    /// Equality is by value: where a node came from does not change what it means.
    public static func == (lhs: YAMLNode, rhs: YAMLNode) -> Bool { lhs.value == rhs.value }

    /// The text a scalar key stands for (a YAML key `1` is the JSON key "1").
    public var keyText: String? {
        switch value {
        case .string(let s): return s
        case .null, .bool, .int, .float: return text
        case .sequence, .mapping: return nil
        }
    }
}
