import Foundation
import Testing
@testable import LetheSpec

/// yaml-test-suite through libyaml: every case outside libyaml 0.2.5's known deviations must pass.
@Suite struct YAMLConformanceTests {
    struct Outcome {
        var passed = 0
        var failures: [String] = []
        var knownDeviations = 0
        var deviationsNowPassing: [String] = []
    }

    static func run() throws -> Outcome {
        let deviations = try Conformance.json("yaml-test-suite/libyaml-0.2.5-deviations.json")
        let known = Set((deviations["cases"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue })
        var outcome = Outcome()
        let limits = YAMLLimits(maxDepth: 256, maxAliasNodes: 1_000_000, unknownTags: .ignore)
        for id in try Conformance.listing("yaml-test-suite/cases") {
            let dir = "yaml-test-suite/cases/\(id)"
            let input = try Conformance.bytes("\(dir)/in.yaml")
            let mustFail = Conformance.exists("\(dir)/error")
            var ok: Bool
            var why = ""
            do {
                let docs = try YAMLLoader.loadStream(input, file: "\(id)/in.yaml", limits: limits)
                if mustFail {
                    ok = false
                    why = "accepted an invalid document"
                } else if Conformance.exists("\(dir)/in.json") {
                    let expected = try JSONParser.parseStream(try Conformance.bytes("\(dir)/in.json"))
                    let actual = try docs.map { try $0.toJSON().0 }
                    ok = actual == expected
                    if !ok { why = "value differs" }
                } else {
                    ok = true
                }
            } catch let error as YAMLError {
                ok = mustFail
                why = "rejected: \(error)"
            }
            let isKnown = known.contains(id)
            if isKnown {
                outcome.knownDeviations += 1
                if ok { outcome.deviationsNowPassing.append(id) }
            } else if ok {
                outcome.passed += 1
            } else {
                outcome.failures.append("\(id): \(why)")
            }
        }
        return outcome
    }

    @Test func suitePassesOutsideLibyamlDeviations() throws {
        let o = try Self.run()
        print(
            "yaml-test-suite: \(o.passed) passed, \(o.failures.count) failed, \(o.knownDeviations) libyaml 0.2.5 deviations expected (\(o.deviationsNowPassing.count) of them pass anyway)"
        )
        #expect(o.failures.isEmpty, "\(o.failures.joined(separator: "\n"))")
        #expect(o.passed + o.knownDeviations == 402)
    }
}
