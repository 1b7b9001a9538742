import Foundation
import Testing
@testable import LetheSpec

@Suite struct CanonicalJSONTests {
    @Test(arguments: ["arrays", "french", "structures", "unicode", "values", "weird"])
    func documentVectorMatchesByteForByte(name: String) throws {
        let input = try Conformance.bytes("json-canonicalization/testdata/input/\(name).json")
        let expected = try Conformance.bytes("json-canonicalization/testdata/output/\(name).json")
        let value = try JSONParser.parse(input, file: name)
        #expect(try CanonicalJSON.bytes(value) == expected)
    }

    @Test func es6NumberVectors() throws {
        let text = String(
            decoding: try Conformance.bytes("json-canonicalization/es6numbers/es6testfile-first100000.txt"),
            as: UTF8.self)
        var passed = 0
        var failures: [String] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ",", maxSplits: 1)
            let bits = UInt64(parts[0], radix: 16)!
            let got = ES6Number.format(Double(bitPattern: bits))
            if got == parts[1] {
                passed += 1
            } else if failures.count < 10 {
                failures.append("\(parts[0]): expected \(parts[1]), got \(got)")
            }
        }
        print("RFC 8785 ES6 number vectors: \(passed) passed, \(100_000 - passed) failed")
        #expect(passed == 100_000, "\(failures)")
    }

    @Test func rejectsWhatJCSCannotRepresent() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(#"{"a":1,"a":2}"#) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(#"["\ud800"]"#) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse("[1e400]") }
        #expect(throws: CanonicalJSONError.self) { try CanonicalJSON.string(.number(.nan)) }
        #expect(throws: CanonicalJSONError.self) { try CanonicalJSON.string(.array([.number(.infinity)])) }
    }

    @Test func integersAboveTwoToThe53RoundLikeDoubles() throws {
        #expect(try CanonicalJSON.string(.integer(9_007_199_254_740_993)) == "9007199254740992")
        #expect(try CanonicalJSON.string(.number(1e21)) == "1e+21")
        #expect(try CanonicalJSON.string(.number(-0.0)) == "0")
    }
}
