import Testing
import LetheJSON

@Suite struct JSONParserTests {
    @Test func parsesEveryKindOfValue() throws {
        let v = try JSONParser.parse(#"{"a": [1, -2.5, 1e3, true, false, null, "x\u00e9\n"], "b": {}}"#)
        #expect(v["a"]?.arrayValue?.count == 7)
        #expect(v["a"]?.arrayValue?[0] == .integer(1))
        #expect(v["a"]?.arrayValue?[1].doubleValue == -2.5)
        #expect(v["a"]?.arrayValue?[2].doubleValue == 1000)
        #expect(v["a"]?.arrayValue?[6].stringValue == "xé\n")
        #expect(v["b"]?.objectValue?.isEmpty == true)
    }

    @Test func errorsNameTheirLineAndColumn() {
        #expect { try JSONParser.parse("{\n  \"a\": [1, 2,]\n}", file: "f.json") } throws: { error in
            let e = error as! JSONParseError
            return e.mark.file == "f.json" && e.mark.line == 2 && e.description.hasPrefix("f.json:2:")
        }
        for bad in ["", "{", "[1 2]", "{\"a\" 1}", "tru", "\"unterminated", "01", "1.", "--1", "{\"a\":1}x"] {
            #expect(throws: JSONParseError.self, "\(bad)") { try JSONParser.parse(bad) }
        }
    }

    @Test func integersBeyondInt64StayNumbersAndIntegralsCompareEqual() throws {
        let big = try JSONParser.parse("[9223372036854775807, 9223372036854775808, 2.0]")
        #expect(big.arrayValue?[0] == .integer(Int.max))
        #expect(big.arrayValue?[1].intValue == nil && big.arrayValue?[1].doubleValue == 9223372036854775808)
        #expect(big.arrayValue?[2] == .integer(2), "2.0 and 2 are the same JSON number")
    }

    @Test func streamsOfValuesParseOnePerLine() throws {
        let values = try JSONParser.parseStream(Array("{\"step\": 1}\n{\"step\": 2}\n".utf8))
        #expect(values.map { $0["step"]?.intValue } == [1, 2])
    }
}

@Suite struct JSONPointerTests {
    @Test func escapingFollowsRFC6901() throws {
        let p = try JSONPointer(parsing: "/a~1b/c~0d/0")
        #expect(p.tokens == ["a/b", "c~d", "0"])
        #expect(p.description == "/a~1b/c~0d/0")
        let v = try JSONParser.parse(#"{"a/b": {"c~d": [42]}}"#)
        #expect(p.resolve(in: v) == .integer(42))
        #expect(JSONPointer().description == "" || JSONPointer().description == "/")
        #expect(throws: JSONPointerError.self) { try JSONPointer(parsing: "a/b") }
        #expect(p.parent.tokens == ["a/b", "c~d"])
    }
}

@Suite struct CanonicalJSONUnitTests {
    /// RFC 8785 by hand: members sorted by UTF-16 code units, no whitespace, ES6 number forms.
    @Test func canonicalFormByHand() throws {
        let v = try JSONParser.parse(#"{"b": [1.0, 1e21, 0.000001, -0], "a": "\u20ac", "\u00e9": null, "A": 1e-7}"#)
        #expect(try CanonicalJSON.string(v) == #"{"A":1e-7,"a":"€","b":[1,1e+21,0.000001,0],"é":null}"#)
    }

    @Test func nonFiniteNumbersAreRefusedWithTheirPath() {
        let v = JSONValue.object(JSONObject([("x", .array([.number(1), .number(.nan)]))]))
        #expect { try CanonicalJSON.string(v) } throws: { error in
            (error as? CanonicalJSONError)?.path.description == "/x/1"
        }
    }

    @Test func es6NumberFormatting() {
        #expect(ES6Number.format(0.1) == "0.1")
        #expect(ES6Number.format(1e21) == "1e+21")
        #expect(ES6Number.format(123456789012345680000) == "123456789012345680000")
        #expect(ES6Number.format(5e-324) == "5e-324")
        #expect(ES6Number.format(-0.0) == "0")
    }
}

@Suite struct JSONObjectTests {
    @Test func membersKeepInsertionOrderAndCompareAsSets() {
        var a = JSONObject([("z", .integer(1)), ("a", .integer(2))])
        #expect(a.keys == ["z", "a"])
        let b = JSONObject([("a", .integer(2)), ("z", .integer(1))])
        #expect(a == b)
        a["z"] = nil
        #expect(a.keys == ["a"] && a.count == 1)
    }
}
