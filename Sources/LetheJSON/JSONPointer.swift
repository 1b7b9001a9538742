/// An RFC 6901 JSON Pointer: `/unlearn/noise/sigma`, `/data/forget/classes/0`.
public struct JSONPointer: Sendable, Hashable, CustomStringConvertible, Comparable {
    public var tokens: [String]

    public init(_ tokens: [String] = []) { self.tokens = tokens }

    public init(parsing text: String) throws(JSONPointerError) {
        guard !text.isEmpty else {
            self.tokens = []
            return
        }
        guard text.hasPrefix("/") else { throw JSONPointerError(pointer: text) }
        tokens = text.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            String($0).replacing("~1", with: "/").replacing("~0", with: "~")
        }
    }

    public static let root = JSONPointer()

    public func appending(_ token: String) -> JSONPointer { JSONPointer(tokens + [token]) }
    public func appending(_ index: Int) -> JSONPointer { JSONPointer(tokens + [String(index)]) }
    public var parent: JSONPointer { JSONPointer(Array(tokens.dropLast())) }
    public var last: String? { tokens.last }

    public var description: String {
        tokens.isEmpty ? "/" : tokens.map { "/" + $0.replacing("~", with: "~0").replacing("/", with: "~1") }.joined()
    }

    /// Dotted form as users write overrides: `unlearn.noise.sigma`.
    public var dotted: String { tokens.joined(separator: ".") }

    public static func < (a: JSONPointer, b: JSONPointer) -> Bool { a.tokens.lexicographicallyPrecedes(b.tokens) }

    /// The value this pointer names inside `root`, if any.
    public func resolve(in root: JSONValue) -> JSONValue? {
        var current = root
        for token in tokens {
            switch current {
            case .object(let o):
                guard let next = o[token] else { return nil }
                current = next
            case .array(let a):
                guard let i = Int(token), a.indices.contains(i), token == String(i) else { return nil }
                current = a[i]
            default:
                return nil
            }
        }
        return current
    }
}

public struct JSONPointerError: Error, Sendable, CustomStringConvertible {
    public var pointer: String
    public var description: String { "'\(pointer)' is not a JSON pointer (it must start with '/')" }
}
