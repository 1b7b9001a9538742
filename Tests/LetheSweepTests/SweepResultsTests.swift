import Foundation
import LetheRuns
import LetheSpec
import Testing

@testable import LetheSweep

@Suite struct SweepResultsTests {
    /// A finished run directory holding `eval` (and a manifest), for the table and the plot to read.
    static func finishedRun(_ eval: JSONValue, in folder: String, _ name: String) throws -> String {
        let dir = folder + "/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try JSONText.pretty(eval).write(toFile: dir + "/eval.json", atomically: true, encoding: .utf8)
        try "{}".write(toFile: dir + "/manifest.json", atomically: true, encoding: .utf8)
        return dir
    }

    /// eval.json with FID of the unlearned model on both splits (intervals +-1) and the original's.
    static func eval(retain: Double, forget: Double) -> JSONValue {
        func metric(_ v: Double) -> JSONValue {
            .object(JSONObject([("value", .number(v)), ("ci95", .array([.number(v - 1), .number(v + 1)]))]))
        }
        func model(_ r: Double, _ f: Double) -> JSONValue {
            .object(
                JSONObject([
                    ("retain", .object(JSONObject([("fid", metric(r))]))),
                    ("forget", .object(JSONObject([("fid", metric(f))]))),
                ]))
        }
        return .object(
            JSONObject([
                ("method", .string("Ours")),
                (
                    "per_mask",
                    .array([
                        .object(
                            JSONObject([
                                ("name", .string("center_crop_0.25")), ("unlearned", model(retain, forget)),
                                ("original", model(1, 2)),
                            ]))
                    ])
                ),
            ]))
    }

    /// Three alphas, two seeds each: each point is the seeds' mean; alpha 1.0 is dominated by alpha 0.5
    /// (worse on the retain side and less forgetting), so it alone is not Pareto-optimal.
    static func record() throws -> SweepRecord {
        let folder = NSTemporaryDirectory() + "lethe-sweep-results-" + UUID().uuidString
        let values: [(Double, Int, Double, Double)] = [
            (0.1, 0, 2, 10), (0.1, 1, 4, 12), (0.5, 0, 5, 30), (0.5, 1, 5, 32), (1.0, 0, 8, 20), (1.0, 1, 9, 22),
        ]
        var members: [SweepRecord.Member] = []
        for (i, v) in values.enumerated() {
            let dir = try finishedRun(eval(retain: v.2, forget: v.3), in: folder, "run\(i)")
            members.append(
                SweepRecord.Member(
                    index: i, base: "/b/un.yaml", kind: "unlearn",
                    settings: [("unlearn.alpha", .number(v.0)), ("seed", .integer(v.1))], metrics: ["fid"],
                    configHash: String(repeating: "\(i)", count: 64), runDirectory: dir, state: nil))
        }
        members.append(
            SweepRecord.Member(
                index: 6, base: "/b/un.yaml", kind: "unlearn",
                settings: [("unlearn.alpha", .number(2)), ("seed", .integer(0))],
                metrics: ["fid"], configHash: String(repeating: "a", count: 64), runDirectory: folder + "/missing",
                state: nil))
        return SweepRecord(
            sweep: "/b/sweep.yaml", name: "alpha", hash: String(repeating: "f", count: 64),
            varied: ["unlearn.alpha", "seed"], members: members, stages: [])
    }

    @Test func theParetoPlotAggregatesSeedsAndMarksTheOptimalAlphas() throws {
        let results = SweepResults(try Self.record())
        let pareto = try #require(Pareto(results))
        #expect(pareto.metric == "fid")
        #expect(pareto.series.count == 1 && pareto.series[0].label == "Ours")
        let points = pareto.series[0].points
        #expect(points.map(\.alpha) == [0.1, 0.5, 1.0])
        #expect(points.map(\.retain.value) == [3, 5, 8.5])
        #expect(points.map(\.forget.value) == [11, 31, 21])
        #expect(points.map(\.optimal) == [true, true, false])
        #expect(pareto.original?.retain.value == 1 && pareto.original?.forget.value == 2)
        let svg = pareto.svg(title: "alpha")
        #expect(svg.contains("α=0.1") && svg.contains("α=0.5") && svg.contains("α=1<"))
        #expect(svg.contains(">original<"))
        // No alpha in the grid, no plot.
        var noAlpha = try Self.record()
        noAlpha.varied = ["seed"]
        #expect(Pareto(SweepResults(noAlpha)) == nil)
    }

    @Test func theTableHasARowPerMemberWithItsSettingsAndIntervals() throws {
        let record = try Self.record()
        let results = SweepResults(record)
        #expect(results.columns.map(\.key) == ["retain_fid", "forget_fid"])
        let csv = results.csv.split(separator: "\n").map(String.init)
        #expect(
            csv[0]
                == "index,unlearn.alpha,seed,retain_fid,retain_fid_lo,retain_fid_hi,forget_fid,forget_fid_lo,forget_fid_hi,config_hash,state"
        )
        #expect(csv[1] == "0,0.1,0,2.0,1.0,3.0,10.0,9.0,11.0,\(String(repeating: "0", count: 64)),finished")
        #expect(csv[7] == "6,2,0,,,,,,,\(String(repeating: "a", count: 64)),pending")
        let md = results.markdown
        #expect(md.contains("| 2 | 0.5 | 0 | 5 [4, 6] | 30 [29, 31] | 222222222222 | finished |"))
        // Written and read back: members.json is enough to collect again.
        let folder = NSTemporaryDirectory() + "lethe-sweep-out-" + UUID().uuidString
        let files = try results.write(record, into: folder)
        #expect(
            files.map { URL(fileURLWithPath: $0).lastPathComponent } == [
                "members.json", "table.md", "table.csv", "pareto.svg", "report.html",
            ])
        let report = try String(contentsOfFile: folder + "/report.html", encoding: .utf8)
        #expect(report.contains("<td>5 [4, 6]</td>") && report.contains("α=0.5") && report.contains("7 (6 finished)"))
        let back = try SweepRecord.read(folder: folder)
        #expect(back.members.map(\.configHash) == record.members.map(\.configHash))
        #expect(SweepResults(back).csv == results.csv)
    }
}

@Suite struct SlurmScriptTests {
    /// Stage jobs chained by afterok, the members' array after them (with its %M limit), the collect job
    /// after the array (afterany); every job requeues and checks the binary's digest.
    @Test func scriptsChainStagesTheArrayAndCollect() throws {
        let folder = try SweepFolder(metrics: "[psnr, fid]")
        let plan = try folder.plan(
            "version: 1\nkind: sweep\nname: t\nbase: un.yaml\ngrid: {seed: [0, 1, 2]}\nslurm: {max_parallel: 2, partition: cpu}\n"
        )
        let binary = folder.path + "/fake lethe"
        try "binary".write(toFile: binary, atomically: true, encoding: .utf8)
        let executor = try SlurmExecutor(binary: binary, settings: plan.slurm, sweepFolder: plan.directory)
        let scripts = executor.scripts(plan, jobs: plan.pendingJobs)
        #expect(
            scripts.map(\.name) == [
                plan.stages[0].name + ".sbatch", plan.stages[1].name + ".sbatch", "members.sbatch", "collect.sbatch",
            ])
        let members = scripts[2].text
        #expect(members.contains("#SBATCH --array=0-2%2\n"))
        #expect(members.contains("#SBATCH --partition=cpu\n") && members.contains("#SBATCH --requeue\n"))
        #expect(members.contains("LETHE='\(binary)'\n"))
        #expect(members.contains("LETHE_SHA256=\(Digest.sha256("binary"))\n"))
        for m in plan.members { #expect(members.contains("--expect-hash \(m.plan.configHash)")) }
        let ids = [plan.stages[0].name: "11", plan.stages[1].name: "12", "members": "13"]
        #expect(
            executor.sbatchArguments(scripts[0], ids: ids) == ["--parsable", executor.folder + "/" + scripts[0].name])
        #expect(executor.sbatchArguments(scripts[1], ids: ids).contains("--dependency=afterok:11"))
        #expect(executor.sbatchArguments(scripts[2], ids: ids).contains("--dependency=afterok:11:12"))
        #expect(executor.sbatchArguments(scripts[3], ids: ids).contains("--dependency=afterany:13"))
        #expect(scripts[3].text.contains("sweep collect \(plan.directory)"))
        #expect(SlurmExecutor.quote("a b'c") == "'a b'\\''c'")
        #expect(SlurmExecutor.quote("seed=1") == "seed=1")
    }
}
