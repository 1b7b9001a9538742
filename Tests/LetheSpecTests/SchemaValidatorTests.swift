import Testing
@testable import LetheSpec

@Suite struct SchemaValidatorTests {
    func violations(_ schema: String, _ instance: String) throws -> [SchemaViolation] {
        var registry = SchemaRegistry()
        registry.register(try JSONParser.parse(schema), uri: "https://t.invalid/s.json")
        return SchemaValidator(registry: registry, rootURI: "https://t.invalid/s.json").validate(
            try JSONParser.parse(instance))
    }

    @Test func reportsEveryProblemNotJustTheFirst() throws {
        let v = try violations(
            #"{"type":"object","properties":{"a":{"type":"integer"},"b":{"enum":["x","y"]}},"additionalProperties":false,"required":["c"]}"#,
            #"{"a":"s","b":"z","learning":1}"#)
        #expect(Set(v.map(\.keyword)) == ["type", "enum", "additionalProperties", "required"])
    }

    @Test func unknownKeysSuggestTheClosestName() throws {
        let v = try violations(
            #"{"properties":{"learning_rate":{},"steps":{}},"additionalProperties":false}"#, #"{"lerning_rate":1}"#)
        #expect(v.count == 1)
        #expect(v[0].message.contains("did you mean 'learning_rate'?"))
        #expect(v[0].concernsKey)
        #expect(v[0].instancePath == JSONPointer(["lerning_rate"]))
    }

    @Test func typeErrorsSayExpectedAndFound() throws {
        let v = try violations(#"{"type":"number"}"#, #""fast""#)
        #expect(v.first?.message == "expected number, found string 'fast'")
    }

    @Test func oneOfExplainsTheClosestAlternative() throws {
        let split =
            #"{"type":"object","properties":{"classes":{},"index_file":{}},"additionalProperties":false,"oneOf":[{"required":["classes"]},{"required":["index_file"]}]}"#
        let v = try violations(split, #"{"clases":[1]}"#)
        #expect(v.contains { $0.message.contains("did you mean 'classes'") })
        #expect(v.contains { $0.message == "missing required key 'classes'" })
        #expect(v.count == 2)
    }

    @Test func integralDoublesAreIntegers() throws {
        #expect(try violations(#"{"type":"integer"}"#, "1.0").isEmpty)
        #expect(!(try violations(#"{"type":"integer"}"#, "1.5")).isEmpty)
    }

    @Test func suggestionsIgnoreFarCandidates() {
        #expect(Suggest.closest(to: "zzz", in: ["method", "alpha"]) == nil)
        #expect(Suggest.closest(to: "aplha", in: ["method", "alpha"]) == "alpha")
        #expect(Suggest.distance("kitten", "sitting") == 3)
    }
}
