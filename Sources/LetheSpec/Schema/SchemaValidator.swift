/// One way an instance fails its schema.
public struct SchemaViolation: Sendable, Hashable {
    public var instancePath: JSONPointer
    /// The keyword that failed (`type`, `enum`, `additionalProperties`, ...).
    public var keyword: String
    public var message: String
    /// True when the problem is the member name itself (an unknown key), not its value.
    public var concernsKey: Bool

    public init(instancePath: JSONPointer, keyword: String, message: String, concernsKey: Bool = false) {
        self.instancePath = instancePath
        self.keyword = keyword
        self.message = message
        self.concernsKey = concernsKey
    }
}

/// A JSON Schema draft 2020-12 validator that reports every violation, not just the first.
///
/// Supported: boolean schemas, `type`, `enum`, `const`, numeric and string bounds, `pattern`, `items`,
/// `prefixItems`, `contains` with min/max, `uniqueItems`, object keywords (`properties`,
/// `patternProperties`, `additionalProperties`, `required`, `propertyNames`, `dependentRequired`,
/// `dependentSchemas`, min/max properties), `allOf`/`anyOf`/`oneOf`/`not`, `if`/`then`/`else`, `$ref`,
/// `$defs`, `$id`, `$anchor`, `$dynamicRef`/`$dynamicAnchor`. Deliberately not supported:
/// `unevaluatedItems`, `unevaluatedProperties` (annotation collection), `$vocabulary`, and `format` as an
/// assertion (it is an annotation, as the spec's default says). Lethe's own schemas use none of them.
public struct SchemaValidator: Sendable {
    public let registry: SchemaRegistry
    public let rootURI: String
    /// Lethe's one addition to JSON Schema: a value of `type: integer` must also fit a 64-bit integer
    /// (JSON Schema counts 1e30 as an integer; a program that holds integers exactly cannot use it).
    public var exactIntegers: Bool
    private static let maxDepth = 200

    public init(registry: SchemaRegistry, rootURI: String, exactIntegers: Bool = false) {
        self.registry = registry
        self.rootURI = rootURI
        self.exactIntegers = exactIntegers
    }

    /// Validates against a schema registered under `rootURI`.
    public func validate(_ instance: JSONValue) -> [SchemaViolation] {
        guard let root = registry.resolve(rootURI, base: rootURI) else {
            return [
                SchemaViolation(instancePath: .root, keyword: "$ref", message: "no schema registered at \(rootURI)")
            ]
        }
        var run = Run(registry: registry)
        run.exactIntegers = exactIntegers
        var out: [SchemaViolation] = []
        run.check(root.schema, instance, base: root.base, scope: [], at: .root, depth: 0, into: &out)
        return out
    }

    public func isValid(_ instance: JSONValue) -> Bool { validate(instance).isEmpty }
}

/// One validation pass; holds the compiled-regex cache.
struct Run {
    let registry: SchemaRegistry
    var regexes: [String: Regex<AnyRegexOutput>?] = [:]
    var exactIntegers = false

    init(registry: SchemaRegistry) { self.registry = registry }

    mutating func matches(_ s: String, pattern: String) -> Bool? {
        if regexes[pattern] == nil { regexes[pattern] = .some(try? Regex(pattern)) }
        guard let regex = regexes[pattern]! else { return nil }
        return (try? regex.firstMatch(in: s)) != nil
    }

    mutating func isValid(
        _ schema: JSONValue, _ instance: JSONValue, base: String, scope: [String], at path: JSONPointer, depth: Int
    ) -> Bool {
        var errs: [SchemaViolation] = []
        check(schema, instance, base: base, scope: scope, at: path, depth: depth, into: &errs)
        return errs.isEmpty
    }

    mutating func check(
        _ schema: JSONValue, _ instance: JSONValue, base outer: String, scope outerScope: [String],
        at path: JSONPointer, depth: Int, into out: inout [SchemaViolation]
    ) {
        func fail(_ keyword: String, _ message: String, at p: JSONPointer = path, key: Bool = false) {
            out.append(SchemaViolation(instancePath: p, keyword: keyword, message: message, concernsKey: key))
        }
        switch schema {
        case .bool(true): return
        case .bool(false):
            if let key = path.last {
                fail("false", "'\(key)' is not allowed here (given the other settings of \(path.parent))", key: true)
            } else {
                fail("false", "no value is allowed here")
            }
            return
        case .object: break
        default: return
        }
        guard depth < 200 else {
            fail("$ref", "schema recursion deeper than 200 levels")
            return
        }
        guard case .object(let s) = schema else { return }
        let base = SchemaRegistry.ownBase(schema, outer: outer)
        let scope = outerScope.last == base ? outerScope : outerScope + [base]

        if let ref = s["$ref"]?.stringValue {
            if let target = registry.resolve(ref, base: base) {
                check(target.schema, instance, base: target.base, scope: scope, at: path, depth: depth + 1, into: &out)
            } else {
                fail("$ref", "cannot resolve schema reference \(ref)")
            }
        }
        if let ref = s["$dynamicRef"]?.stringValue {
            if let target = resolveDynamic(ref, base: base, scope: scope) {
                check(target.schema, instance, base: target.base, scope: scope, at: path, depth: depth + 1, into: &out)
            } else {
                fail("$dynamicRef", "cannot resolve schema reference \(ref)")
            }
        }

        if let t = s["type"] {
            let allowed = t.arrayValue?.compactMap(\.stringValue) ?? [t.stringValue].compactMap { $0 }
            if !allowed.contains(where: { Self.hasType(instance, $0) }) {
                fail("type", "expected \(allowed.joined(separator: " or ")), found \(Self.describe(instance))")
            } else if exactIntegers, allowed == ["integer"], instance.intValue == nil {
                fail(
                    "type", "integer \(Self.render(instance)) is out of range; integers must lie within -2^63...2^63-1")
            }
        }
        if let e = s["enum"]?.arrayValue, !e.contains(instance) {
            var message = "must be one of \(e.map(Self.render).joined(separator: ", ")); found \(Self.render(instance))"
            if let str = instance.stringValue, let guess = Suggest.closest(to: str, in: e.compactMap(\.stringValue)) {
                message += "; did you mean '\(guess)'?"
            }
            fail("enum", message)
        }
        if let c = s["const"], c != instance {
            fail("const", "must be \(Self.render(c)); found \(Self.render(instance))")
        }

        if let x = instance.doubleValue {
            if let m = s["minimum"]?.doubleValue, x < m {
                fail("minimum", "must be >= \(Self.render(s["minimum"]!)); found \(Self.render(instance))")
            }
            if let m = s["maximum"]?.doubleValue, x > m {
                fail("maximum", "must be <= \(Self.render(s["maximum"]!)); found \(Self.render(instance))")
            }
            if let m = s["exclusiveMinimum"]?.doubleValue, x <= m {
                fail(
                    "exclusiveMinimum",
                    "must be > \(Self.render(s["exclusiveMinimum"]!)); found \(Self.render(instance))")
            }
            if let m = s["exclusiveMaximum"]?.doubleValue, x >= m {
                fail(
                    "exclusiveMaximum",
                    "must be < \(Self.render(s["exclusiveMaximum"]!)); found \(Self.render(instance))")
            }
            if let m = s["multipleOf"], !Self.isMultiple(instance, of: m) {
                fail("multipleOf", "must be a multiple of \(Self.render(m))")
            }
        }

        if case .string(let str) = instance {
            let length = str.unicodeScalars.count
            if let m = s["minLength"]?.intValue, length < m {
                fail("minLength", "must be at least \(m) characters long")
            }
            if let m = s["maxLength"]?.intValue, length > m {
                fail("maxLength", "must be at most \(m) characters long")
            }
            if let p = s["pattern"]?.stringValue {
                switch matches(str, pattern: p) {
                case .some(false): fail("pattern", "must match the pattern \(p)")
                case .none:
                    fail("pattern", "the schema's pattern \(p) is not a regular expression this validator understands")
                default: break
                }
            }
        }

        if case .array(let items) = instance {
            checkArray(s, items, base: base, scope: scope, at: path, depth: depth, into: &out)
        }
        if case .object(let obj) = instance {
            checkObject(s, obj, base: base, scope: scope, at: path, depth: depth, into: &out)
        }

        if let all = s["allOf"]?.arrayValue {
            for sub in all { check(sub, instance, base: base, scope: scope, at: path, depth: depth + 1, into: &out) }
        }
        if let any = s["anyOf"]?.arrayValue {
            var branches: [[SchemaViolation]] = []
            for sub in any {
                var errs: [SchemaViolation] = []
                check(sub, instance, base: base, scope: scope, at: path, depth: depth + 1, into: &errs)
                if errs.isEmpty {
                    branches = []
                    break
                }
                branches.append(errs)
            }
            if !branches.isEmpty { reportClosest(branches, keyword: "anyOf", at: path, into: &out) }
        }
        if let one = s["oneOf"]?.arrayValue {
            var branches: [[SchemaViolation]] = []
            var passed = 0
            for sub in one {
                var errs: [SchemaViolation] = []
                check(sub, instance, base: base, scope: scope, at: path, depth: depth + 1, into: &errs)
                if errs.isEmpty { passed += 1 } else { branches.append(errs) }
            }
            if passed == 0 { reportClosest(branches, keyword: "oneOf", at: path, into: &out) }
            if passed > 1 { fail("oneOf", "matches \(passed) of the alternatives; it must match exactly one") }
        }
        if let not = s["not"], isValid(not, instance, base: base, scope: scope, at: path, depth: depth + 1) {
            // A schema author's `description` of the forbidden shape reads better than the shape itself.
            fail("not", not["description"]?.stringValue ?? "must not match \(Self.render(not))")
        }
        if let cond = s["if"] {
            if isValid(cond, instance, base: base, scope: scope, at: path, depth: depth + 1) {
                if let then = s["then"] {
                    check(then, instance, base: base, scope: scope, at: path, depth: depth + 1, into: &out)
                }
            } else if let els = s["else"] {
                check(els, instance, base: base, scope: scope, at: path, depth: depth + 1, into: &out)
            }
        }
    }

    /// `$dynamicRef`: where the static target is a `$dynamicAnchor`, the outermost resource in the
    /// dynamic scope that declares the same anchor wins.
    private func resolveDynamic(_ ref: String, base: String, scope: [String]) -> SchemaRegistry.Located? {
        guard let target = registry.resolve(ref, base: base) else { return nil }
        let fragment = URIReference.split(ref).fragment ?? ""
        guard !fragment.isEmpty, !fragment.hasPrefix("/"), target.schema["$dynamicAnchor"]?.stringValue == fragment
        else {
            return target
        }
        for resource in scope {
            if let found = registry.dynamicAnchor(fragment, inResource: resource) { return found }
        }
        return target
    }

    /// When no alternative fits, the alternative that came closest explains the problem best.
    private func reportClosest(
        _ branches: [[SchemaViolation]], keyword: String, at path: JSONPointer, into out: inout [SchemaViolation]
    ) {
        let best = branches.min { $0.count < $1.count }!
        if best.count <= 3 {
            out.append(contentsOf: best)
        } else {
            out.append(
                SchemaViolation(
                    instancePath: path, keyword: keyword, message: "matches none of the \(branches.count) allowed forms"
                ))
        }
    }

    private mutating func checkArray(
        _ s: JSONObject, _ items: [JSONValue], base: String, scope: [String], at path: JSONPointer, depth: Int,
        into out: inout [SchemaViolation]
    ) {
        if let m = s["minItems"]?.intValue, items.count < m {
            out.append(
                .init(
                    instancePath: path, keyword: "minItems",
                    message: "must have at least \(m) items; found \(items.count)"))
        }
        if let m = s["maxItems"]?.intValue, items.count > m {
            out.append(
                .init(
                    instancePath: path, keyword: "maxItems",
                    message: "must have at most \(m) items; found \(items.count)"))
        }
        if s["uniqueItems"]?.boolValue == true {
            outer: for i in items.indices {
                for j in items.indices where j > i && items[i] == items[j] {
                    out.append(
                        .init(
                            instancePath: path.appending(j), keyword: "uniqueItems",
                            message: "repeats item \(i) (\(Self.render(items[i]))); items must be unique"))
                    break outer
                }
            }
        }
        let prefix = s["prefixItems"]?.arrayValue ?? []
        for (i, sub) in prefix.enumerated() where i < items.count {
            check(sub, items[i], base: base, scope: scope, at: path.appending(i), depth: depth + 1, into: &out)
        }
        if let rest = s["items"] {
            for i in items.indices where i >= prefix.count {
                check(rest, items[i], base: base, scope: scope, at: path.appending(i), depth: depth + 1, into: &out)
            }
        }
        if let contains = s["contains"] {
            var count = 0
            for (i, item) in items.enumerated()
            where isValid(contains, item, base: base, scope: scope, at: path.appending(i), depth: depth + 1) {
                count += 1
            }
            let minC = s["minContains"]?.intValue ?? 1
            if count < minC {
                out.append(
                    .init(
                        instancePath: path, keyword: "contains",
                        message: "must contain at least \(minC) matching item(s); found \(count)"))
            }
            if let maxC = s["maxContains"]?.intValue, count > maxC {
                out.append(
                    .init(
                        instancePath: path, keyword: "maxContains",
                        message: "must contain at most \(maxC) matching item(s); found \(count)"))
            }
        }
    }

    private mutating func checkObject(
        _ s: JSONObject, _ obj: JSONObject, base: String, scope: [String], at path: JSONPointer, depth: Int,
        into out: inout [SchemaViolation]
    ) {
        if let m = s["minProperties"]?.intValue, obj.count < m {
            out.append(.init(instancePath: path, keyword: "minProperties", message: "must have at least \(m) members"))
        }
        if let m = s["maxProperties"]?.intValue, obj.count > m {
            out.append(.init(instancePath: path, keyword: "maxProperties", message: "must have at most \(m) members"))
        }
        if let required = s["required"]?.arrayValue {
            for case .string(let name) in required where obj[name] == nil {
                out.append(.init(instancePath: path, keyword: "required", message: "missing required key '\(name)'"))
            }
        }
        if let dependent = s["dependentRequired"]?.objectValue {
            for (trigger, names) in dependent where obj[trigger] != nil {
                for case .string(let name) in names.arrayValue ?? [] where obj[name] == nil {
                    out.append(
                        .init(
                            instancePath: path, keyword: "dependentRequired",
                            message: "'\(trigger)' requires '\(name)' as well"))
                }
            }
        }
        if let dependent = s["dependentSchemas"]?.objectValue {
            for (trigger, sub) in dependent where obj[trigger] != nil {
                check(sub, .object(obj), base: base, scope: scope, at: path, depth: depth + 1, into: &out)
            }
        }
        let properties = s["properties"]?.objectValue ?? JSONObject()
        let patterns = s["patternProperties"]?.objectValue ?? JSONObject()
        for (name, value) in obj {
            var matched = false
            if let sub = properties[name] {
                matched = true
                check(sub, value, base: base, scope: scope, at: path.appending(name), depth: depth + 1, into: &out)
            }
            for (pattern, sub) in patterns where matches(name, pattern: pattern) == true {
                matched = true
                check(sub, value, base: base, scope: scope, at: path.appending(name), depth: depth + 1, into: &out)
            }
            if !matched, let additional = s["additionalProperties"] {
                if additional == .bool(false) {
                    var message = "unknown key '\(name)'"
                    if let guess = Suggest.closest(to: name, in: properties.keys) {
                        message += "; did you mean '\(guess)'?"
                    } else if !properties.isEmpty {
                        message += "; allowed keys: \(properties.keys.joined(separator: ", "))"
                    }
                    out.append(
                        .init(
                            instancePath: path.appending(name), keyword: "additionalProperties", message: message,
                            concernsKey: true))
                } else {
                    check(
                        additional, value, base: base, scope: scope, at: path.appending(name), depth: depth + 1,
                        into: &out)
                }
            }
            if let names = s["propertyNames"] {
                var errs: [SchemaViolation] = []
                check(
                    names, .string(name), base: base, scope: scope, at: path.appending(name), depth: depth + 1,
                    into: &errs)
                out.append(
                    contentsOf: errs.map {
                        var e = $0
                        e.concernsKey = true
                        e.message = "key name: " + e.message
                        return e
                    })
            }
        }
    }

    static func hasType(_ v: JSONValue, _ type: String) -> Bool {
        switch type {
        case "null": if case .null = v { return true }
        case "boolean": if case .bool = v { return true }
        case "integer": return v.isIntegral
        case "number": return v.doubleValue != nil
        case "string": if case .string = v { return true }
        case "array": if case .array = v { return true }
        case "object": if case .object = v { return true }
        default: return false
        }
        return false
    }

    static func isMultiple(_ x: JSONValue, of m: JSONValue) -> Bool {
        if case .integer(let a) = x, case .integer(let b) = m, b != 0 { return a % b == 0 }
        guard let a = x.doubleValue, let b = m.doubleValue, b != 0 else { return true }
        let q = a / b
        guard q.isFinite else { return false }
        return abs(q - q.rounded()) <= 1e-9 * max(1, abs(q))
    }

    static func describe(_ v: JSONValue) -> String {
        "\(v.typeName) \(render(v))"
    }

    /// A short rendering of a value for messages.
    static func render(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): return "'\(s)'"
        case .array(let a) where a.count > 6: return "[\(a.prefix(6).map(render).joined(separator: ", ")), ...]"
        case .object(let o) where o.count > 4: return "{...}"
        default:
            let text = (try? CanonicalJSON.string(v)) ?? "\(v.doubleValue ?? .nan)"
            return text.count > 80 ? String(text.prefix(77)) + "..." : text
        }
    }
}
