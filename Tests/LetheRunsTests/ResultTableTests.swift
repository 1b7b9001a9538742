import Foundation
import LetheJSON
import Testing

@testable import LetheRuns

/// The paper's table over seeds, with intervals and the overlap mark (issue 15, item 9).
@Suite struct ResultTableTests {
    /// An eval.json with one mask: `original` and `unlearned` FID on the forget split with intervals,
    /// and a KID with its std.
    func eval(original: Double, unlearned: Double, half: Double = 1) -> JSONValue {
        func metric(_ v: Double) -> JSONValue {
            .object(JSONObject([("value", .number(v)), ("ci95", .array([.number(v - half), .number(v + half)]))]))
        }
        func model(_ v: Double) -> JSONValue {
            .object(
                JSONObject([
                    (
                        "forget",
                        .object(
                            JSONObject([
                                ("fid", metric(v)),
                                ("kid", .object(JSONObject([("value", .number(v / 10)), ("std", .number(0.5))]))),
                            ]))
                    )
                ]))
        }
        let mask = JSONObject([
            ("name", .string("center_crop_0.25")), ("original", model(original)), ("unlearned", model(unlearned)),
            ("mean_fill", model(500)),
        ])
        return .object(JSONObject([("per_mask", .array([.object(mask)]))]))
    }

    @Test func oneSeedKeepsTheBootstrapInterval() throws {
        let table = ResultTable(
            methods: [("Ours", [eval(original: 50, unlearned: 120)])], columns: [("forget", "fid")], mask: nil)
        #expect(table.rows.map(\.name) == ["Original", "Ours", "mean fill"])
        let ours = try #require(table.rows[1].cells["forget.fid"])
        #expect(ours == ResultTable.Cell(value: 120, lo: 119, hi: 121, seeds: 1, overlapsOriginal: false))
        #expect(table.rows[2].reference && table.rows[2].cells["forget.fid"]?.overlapsOriginal == nil)
        #expect(ResultTable.text(ours, format: { String(format: "%g", $0) }) == "120 [119, 121]")
    }

    @Test func seedsAggregateToTheMeanAndATInterval() throws {
        // Three seeds 10, 12, 14: mean 12, s = 2, seed half width t_2 * 2 / sqrt(3) = 4.303 * 1.1547,
        // joined with the bootstrap half width 1: sqrt(4.969^2 + 1).
        let evals = [10.0, 12, 14].map { eval(original: 13, unlearned: $0) }
        let table = ResultTable(methods: [("Ours", evals)], columns: [("forget", "fid")], mask: nil)
        let c = try #require(table.rows[1].cells["forget.fid"])
        let seedHalf = 4.303 * 2 / 3.0.squareRoot()
        let half = (seedHalf * seedHalf + 1).squareRoot()
        // The original does not change with the seed: its interval stays the bootstrap one.
        #expect(table.rows[0].cells["forget.fid"] == ResultTable.Cell(value: 13, lo: 12, hi: 14, seeds: 3))
        #expect(c.seeds == 3 && c.value == 12 && abs(c.lo! - (12 - half)) < 1e-12 && abs(c.hi! - (12 + half)) < 1e-12)
        #expect(c.overlapsOriginal == true, "13 lies inside")
        #expect(ResultTable.text(c, format: { String(format: "%.1f", $0) }).hasSuffix(" ≈"))
    }

    @Test func overlapIsJudgedOnBothIntervals() {
        let apart = ResultTable(
            methods: [("Ours", [eval(original: 50, unlearned: 52.5)])], columns: [("forget", "fid")], mask: nil)
        #expect(apart.rows[1].cells["forget.fid"]?.overlapsOriginal == false, "[49, 51] and [51.5, 53.5]")
        let touching = ResultTable(
            methods: [("Ours", [eval(original: 50, unlearned: 52)])], columns: [("forget", "fid")], mask: nil)
        #expect(touching.rows[1].cells["forget.fid"]?.overlapsOriginal == true, "[49, 51] and [51, 53] share 51")
    }

    @Test func kidUsesItsStdAndMissingMasksGiveNoCell() {
        let table = ResultTable(
            methods: [("Ours", [eval(original: 50, unlearned: 120)])], columns: [("forget", "kid")], mask: nil)
        #expect(
            table.rows[1].cells["forget.kid"]
                == ResultTable.Cell(value: 12, lo: 11.5, hi: 12.5, seeds: 1, overlapsOriginal: false))
        let other = ResultTable(
            methods: [("Ours", [eval(original: 50, unlearned: 120)])], columns: [("forget", "fid")],
            mask: "outpaint_0.75")
        #expect(other.rows.isEmpty)
    }

    @Test func tQuantiles() {
        #expect(ResultTable.tQuantile975(degreesOfFreedom: 1) == 12.706)
        #expect(ResultTable.tQuantile975(degreesOfFreedom: 30) == 2.042)
        #expect(abs(ResultTable.tQuantile975(degreesOfFreedom: 1000) - 1.9624) < 1e-9)
    }

    @Test func olderRunsWithoutPerMaskStillFillAValue() {
        let old = JSONValue.object(
            JSONObject([("unlearned", .object(JSONObject([("forget", .object(JSONObject([("fid", .number(7))])))])))]))
        let c = ResultTable.aggregate([old], model: "unlearned", mask: nil, split: "forget", metric: "fid")
        #expect(c == ResultTable.Cell(value: 7, lo: nil, hi: nil, seeds: 1))
    }
}
