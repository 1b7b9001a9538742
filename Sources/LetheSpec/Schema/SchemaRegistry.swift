/// Schemas known by URI: every resource (`$id`) and anchor (`$anchor`, `$dynamicAnchor`) indexed, so
/// `$ref` resolves without touching the network.
public struct SchemaRegistry: Sendable {
    struct Located: Sendable {
        var schema: JSONValue
        var base: String
    }

    /// Resources by absolute URI; `base` is the base URI in effect around each one, so evaluating it
    /// applies its own `$id` exactly once.
    private(set) var resources: [String: Located] = [:]
    private(set) var anchors: [String: Located] = [:]
    private(set) var dynamicAnchors: [String: Located] = [:]

    public init() {}

    /// Keywords whose value is one schema, an array of schemas, or a map of name -> schema.
    static let singleSchemaKeywords: Set<String> = [
        "additionalProperties", "items", "contains", "not", "if", "then", "else", "propertyNames",
        "unevaluatedItems", "unevaluatedProperties", "contentSchema",
    ]
    static let schemaArrayKeywords: Set<String> = ["allOf", "anyOf", "oneOf", "prefixItems"]
    static let schemaMapKeywords: Set<String> = [
        "properties", "patternProperties", "$defs", "definitions", "dependentSchemas",
    ]

    /// The base URI inside `schema`, given the base around it.
    static func ownBase(_ schema: JSONValue, outer: String) -> String {
        guard let id = schema["$id"]?.stringValue else { return outer }
        return URIReference.split(URIReference.resolve(id, against: outer)).base
    }

    /// Registers `schema` as retrieved from `uri` (its own `$id`, if any, is registered too).
    public mutating func register(_ schema: JSONValue, uri: String) {
        let retrieval = URIReference.split(uri).base
        resources[retrieval] = Located(schema: schema, base: retrieval)
        index(schema, outer: retrieval)
    }

    private mutating func index(_ schema: JSONValue, outer: String) {
        guard case .object(let obj) = schema else { return }
        let base = Self.ownBase(schema, outer: outer)
        if obj["$id"] != nil { resources[base] = Located(schema: schema, base: outer) }
        if let anchor = obj["$anchor"]?.stringValue {
            anchors[base + "#" + anchor] = Located(schema: schema, base: outer)
        }
        if let anchor = obj["$dynamicAnchor"]?.stringValue {
            anchors[base + "#" + anchor] = Located(schema: schema, base: outer)
            dynamicAnchors[base + "#" + anchor] = Located(schema: schema, base: outer)
        }
        for (key, value) in obj {
            if Self.singleSchemaKeywords.contains(key) {
                index(value, outer: base)
            } else if Self.schemaArrayKeywords.contains(key), case .array(let items) = value {
                items.forEach { index($0, outer: base) }
            } else if Self.schemaMapKeywords.contains(key), case .object(let map) = value {
                map.forEach { index($0.value, outer: base) }
            }
        }
    }

    /// The schema a reference names, with the base URI around it.
    func resolve(_ reference: String, base: String) -> Located? {
        let absolute = URIReference.resolve(reference, against: base)
        let (uri, fragment) = URIReference.split(absolute)
        guard let resource = resources[uri] else { return nil }
        guard let fragment, !fragment.isEmpty else { return resource }
        if fragment.hasPrefix("/") {
            guard let pointer = try? JSONPointer(parsing: fragment) else { return nil }
            return walk(resource, pointer: pointer)
        }
        return anchors[uri + "#" + fragment]
    }

    /// The dynamic anchor `name` declared by the resource at `base`, if it declares one.
    func dynamicAnchor(_ name: String, inResource base: String) -> Located? {
        dynamicAnchors[base + "#" + name]
    }

    /// Follows a JSON pointer inside a resource, picking up any `$id` it passes.
    private func walk(_ start: Located, pointer: JSONPointer) -> Located? {
        var current = start.schema
        var outer = start.base
        for token in pointer.tokens {
            let inner = Self.ownBase(current, outer: outer)
            switch current {
            case .object(let o):
                guard let next = o[token] else { return nil }
                current = next
            case .array(let a):
                guard let i = Int(token), a.indices.contains(i) else { return nil }
                current = a[i]
            default:
                return nil
            }
            outer = inner
        }
        return Located(schema: current, base: outer)
    }
}
