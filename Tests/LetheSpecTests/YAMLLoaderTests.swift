import Foundation
import Testing
@testable import LetheSpec

@Suite struct YAMLLoaderTests {
    func load(_ text: String, limits: YAMLLimits = .spec) throws -> JSONValue {
        try YAMLLoader.loadDocument(Array(text.utf8), file: "t.yaml", limits: limits).toJSON().0
    }

    @Test func plainScalarsResolveByTheYAML12CoreSchema() throws {
        let v = try load(
            """
            a: yes
            b: on
            c: 0x1F
            d: 1e-4
            e: .inf
            f: ~
            g: 0o17
            h: -.INF
            i: 12
            j: 1.5
            k: "12"
            l: 'true'
            m: true
            n: null
            o: 2001-12-14
            p: 012
            """)
        #expect(v["a"] == .string("yes"))
        #expect(v["b"] == .string("on"))
        #expect(v["c"] == .integer(31))
        #expect(v["d"] == .number(0.0001))
        #expect(v["e"] == .number(.infinity))
        #expect(v["f"] == .null)
        #expect(v["g"] == .integer(15))
        #expect(v["h"] == .number(-.infinity))
        #expect(v["i"] == .integer(12))
        #expect(v["j"] == .number(1.5))
        #expect(v["k"] == .string("12"))
        #expect(v["l"] == .string("true"))
        #expect(v["m"] == .bool(true))
        #expect(v["n"] == .null)
        #expect(v["o"] == .string("2001-12-14"))
        #expect(v["p"] == .integer(12), "YAML 1.2 has no leading-zero octal")
    }

    @Test func nanResolvesToAFloat() throws {
        guard case .number(let d)? = try load("x: .nan")["x"] else {
            Issue.record("not a number")
            return
        }
        #expect(d.isNaN)
    }

    @Test func marksAreOneBased() throws {
        let node = try YAMLLoader.loadDocument(Array("a:\n  b: [1, 22]\n".utf8), file: "m.yaml")
        let (_, map) = try node.toJSON()
        #expect(map.values[JSONPointer(["a", "b", "1"])] == SourceMark(file: "m.yaml", line: 2, column: 10))
        #expect(map.keys[JSONPointer(["a", "b"])] == SourceMark(file: "m.yaml", line: 2, column: 3))
    }

    @Test func anchorsAliasesAndMergeKeys() throws {
        let v = try load(
            """
            base: &b {lr: 0.1, steps: 5}
            other: &o {steps: 9, seed: 1}
            run:
              <<: [*b, *o]
              steps: 7
            copy: *b
            """)
        #expect(v["run"] == .object(JSONObject([("lr", .number(0.1)), ("steps", .integer(7)), ("seed", .integer(1))])))
        #expect(v["copy"] == v["base"])
    }

    @Test func quotedMergeKeyIsAnOrdinaryKey() throws {
        let v = try load("'<<': 1")
        #expect(v["<<"] == .integer(1))
    }

    @Test func duplicateKeysAreErrorsWithTheirPath() {
        #expect {
            try load("a:\n  x: 1\n  x: 2\n")
        } throws: { error in
            let e = error as! YAMLError
            return e.mark.line == 3 && e.mark.column == 3 && e.path == ["a", "x"]
                && e.message.contains("duplicate key 'x'")
        }
    }

    @Test func billionLaughsIsRefusedClearly() {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 {
            text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        #expect {
            try load(text)
        } throws: { error in
            (error as! YAMLError).message.contains("aliases expand to more than")
        }
    }

    @Test func nestingDepthIsBounded() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: YAMLError.self) { try load(deep) }
        #expect(throws: Never.self) { try load(String(repeating: "[", count: 30) + String(repeating: "]", count: 30)) }
    }

    @Test func aSpecIsOneDocument() {
        #expect {
            try load("a: 1\n---\nb: 2\n")
        } throws: { error in
            let e = error as! YAMLError
            return e.message.contains("found 2") && e.mark.line == 2
        }
        #expect(throws: YAMLError.self) { try load("# only a comment\n") }
    }

    @Test func unknownTagsAreRejectedInSpecs() throws {
        #expect(throws: YAMLError.self) { try load("a: !python/object x") }
        #expect(try load("a: !!str 12")["a"] == .string("12"))
        #expect(try load("a: !!float 3")["a"] == .number(3))
        #expect(throws: YAMLError.self) { try load("a: !!int abc") }
    }

    @Test func syntaxErrorsCarryTheirPlace() {
        #expect {
            try load("a: [1, 2\nb: 3\n")
        } throws: { error in
            let e = error as! YAMLError
            return e.mark.file == "t.yaml" && e.mark.line >= 2
        }
    }

    @Test func collectionKeysCannotBecomeJSON() {
        #expect(throws: YAMLError.self) { try load("? [a, b]\n: 1\n") }
    }
}

/// Inputs that once crashed, hung or were misread: each is now a located error or loads in linear time.
@Suite struct YAMLHardeningTests {
    func loadError(_ bytes: [UInt8]) -> YAMLError? {
        do {
            _ = try YAMLLoader.loadDocument(bytes, file: "t.yaml")
            return nil
        } catch {
            return error
        }
    }

    @Test func integersPastInt64AreLocatedErrors() throws {
        let e = try #require(loadError(Array("train:\n  steps: 1180591620717411303424\n".utf8)))
        #expect(e.mark.line == 2 && e.mark.column == 10)
        #expect(e.path == ["train", "steps"])
        #expect(e.message.contains("out of range"))
        #expect(loadError(Array("a: [1, 2, 0x10000000000000000]\n".utf8))?.path == ["a", "2"])
        #expect(
            loadError(Array("a: 9223372036854775807\nb: -9223372036854775808\nc: 1e30\n".utf8)) == nil,
            "Int64's ends and floats load")
    }

    /// libyaml reports reader errors by byte offset; they are placed on their line and column.
    @Test func invalidUTF8AndNULAreReportedWhereTheyAre() throws {
        let bad = try #require(
            loadError(Array("version: 1\nkind: pretrain\nname: \"ab".utf8) + [0xFF] + Array("c\"\n".utf8)))
        #expect((bad.mark.line, bad.mark.column) == (3, 10))
        #expect(bad.message.contains("UTF-8") && bad.message.contains("0xFF"))
        let nul = try #require(loadError(Array("a: 1\nb: x".utf8) + [0] + Array("y\n".utf8)))
        #expect((nul.mark.line, nul.mark.column) == (2, 5))
        #expect(nul.message.contains("0x00"))
    }

    /// Long lists and mappings load in linear time: 200,000 items took minutes when every append copied
    /// the list. Judged by growth, not by a time limit (which fails on a loaded or sanitised build):
    /// four times the items must cost less than nine times the CPU time of this thread (linear: 4x,
    /// quadratic: 16x), the smaller size measured twice and its faster time kept.
    @Test func longListsAndMappingsLoadInLinearTime() throws {
        func documents(_ n: Int) -> ([UInt8], [UInt8]) {
            var list = "items:\n"
            for i in 0..<n { list += "  - \(i)\n" }
            var map = "map:\n"
            for i in 0..<n { map += "  k\(i): \(i)\n" }
            return (Array(list.utf8), Array(map.utf8))
        }
        func threadSeconds() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
        }
        func load(_ n: Int) throws -> Double {
            let (list, map) = documents(n)
            let started = threadSeconds()
            let l = try YAMLLoader.loadDocument(list, file: "l.yaml").toJSON().0
            let m = try YAMLLoader.loadDocument(map, file: "m.yaml").toJSON().0
            let seconds = threadSeconds() - started
            #expect(l["items"]?.arrayValue?.count == n && m["map"]?.objectValue?.count == n)
            return seconds
        }
        let small = min(try load(50_000), try load(50_000))
        let large = try load(200_000)
        #expect(large < 9 * small, "quadratic loading is back: 4x the items took \(large / small)x the time")
        #expect(
            loadError(Array("map:\n  a: 1\n  b: 2\n  a: 3\n".utf8))?.message.contains(
                "duplicate key 'a' (first at line 2, column 3)") == true)
    }
}
