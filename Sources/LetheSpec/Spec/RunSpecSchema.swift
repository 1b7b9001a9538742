/// The run-spec schemas as a validator and a defaults filler.
public struct RunSpecSchema: Sendable {
    public static let baseURI = "https://lethe.invalid/schemas/"
    public static let rootURI = baseURI + "run-spec.schema.json"
    /// The root of sweep specs (`kind: sweep`), in the same registry.
    public static let sweepURI = baseURI + "sweep.schema.json"

    public let registry: SchemaRegistry
    public var validator: SchemaValidator { validator(root: Self.rootURI) }

    public func validator(root: String) -> SchemaValidator {
        SchemaValidator(registry: registry, rootURI: root, exactIntegers: true)
    }

    /// The schemas compiled into the binary (identical to `schemas/`, which a test checks).
    public static let embedded: RunSpecSchema = {
        var registry = SchemaRegistry()
        for file in EmbeddedSchemas.files {
            // The embedded texts are tested to parse; a failure here is a build defect, not user input.
            let schema = try! JSONParser.parse(file.text, file: file.name)
            registry.register(schema, uri: baseURI + file.name)
        }
        return RunSpecSchema(registry: registry)
    }()

    /// The noise settings of an unlearning spec, with the schema's defaults filled in as the planner
    /// fills them, typed (for library users and tests that build a noise model without a whole spec).
    public func resolvedNoise(_ partial: JSONValue) throws -> UnlearnSpec.Noise {
        let spec = JSONValue.object(
            JSONObject([
                ("version", .integer(1)), ("kind", .string("unlearn")),
                ("model", .object(JSONObject([("architecture", .string("mae"))]))),
                ("unlearn", .object(JSONObject([("method", .string("ours")), ("noise", partial)]))),
            ]))
        let problems = validator.validate(spec)
        guard problems.isEmpty else {
            throw SpecError(problems.map { Diagnostic($0.message, at: $0.instancePath, mark: nil) })
        }
        guard let noise = try RunSpec.decode(fillingDefaults(spec)).unlearn?.noise else {
            throw SpecError("no noise settings", mark: nil)
        }
        return noise
    }

    /// The instance with every `default` the schema gives filled in, including defaults that
    /// `if`/`then` branches give once earlier defaults are in place.
    public func fillingDefaults(_ instance: JSONValue, root uri: String = rootURI) -> JSONValue {
        guard let root = registry.resolve(uri, base: uri) else { return instance }
        var current = instance
        for _ in 0..<8 {
            var filler = DefaultFiller(registry: registry)
            let next = filler.fill(root.schema, current, base: root.base)
            if next == current { return next }
            current = next
        }
        return current
    }
}

/// Walks a schema beside an instance and inserts the defaults of absent members.
struct DefaultFiller {
    let registry: SchemaRegistry
    var run: Run

    init(registry: SchemaRegistry) {
        self.registry = registry
        self.run = Run(registry: registry)
    }

    private func defaultValue(of schema: JSONValue, base: String) -> JSONValue? {
        if let d = schema["default"] { return d }
        if let ref = schema["$ref"]?.stringValue,
            let target = registry.resolve(ref, base: SchemaRegistry.ownBase(schema, outer: base))
        {
            return defaultValue(of: target.schema, base: target.base)
        }
        return nil
    }

    mutating func fill(_ schema: JSONValue, _ instance: JSONValue, base outer: String) -> JSONValue {
        guard case .object(let s) = schema else { return instance }
        let base = SchemaRegistry.ownBase(schema, outer: outer)
        var value = instance
        if let ref = s["$ref"]?.stringValue, let target = registry.resolve(ref, base: base) {
            value = fill(target.schema, value, base: target.base)
        }
        if case .object(var obj) = value, let properties = s["properties"]?.objectValue {
            for (name, sub) in properties {
                if obj[name] == nil, let d = defaultValue(of: sub, base: base) { obj[name] = d }
                if let present = obj[name] { obj[name] = fill(sub, present, base: base) }
            }
            value = .object(obj)
        }
        if case .array(var items) = value, let itemSchema = s["items"] {
            for i in items.indices { items[i] = fill(itemSchema, items[i], base: base) }
            value = .array(items)
        }
        for sub in s["allOf"]?.arrayValue ?? [] { value = fill(sub, value, base: base) }
        if let condition = s["if"] {
            if run.isValid(condition, value, base: base, scope: [base], at: .root, depth: 0) {
                if let then = s["then"] { value = fill(then, value, base: base) }
            } else if let els = s["else"] {
                value = fill(els, value, base: base)
            }
        }
        return value
    }
}
