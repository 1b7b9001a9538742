import ArgumentParser
import Foundation
import LetheSweep

struct SweepCollect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collect",
        abstract: "Write a sweep's table (and Pareto plot) from its finished members, running nothing.",
        discussion:
            "Takes the sweep spec, or the sweep's results folder (<output>/sweeps/<hash>/, whose members.json names the members: what the Slurm executor's collect job uses). Rewrites members.json, table.md, table.csv and pareto.svg there and prints table.md."
    )

    @Argument(help: "Sweep spec, or a sweep's results folder.", completion: .file())
    var target: String

    func run() throws {
        let record: SweepRecord
        let folder: String
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory), isDirectory.boolValue {
            do { record = try SweepRecord.read(folder: target) } catch { throw failure("\(error)") }
            folder = target
        } else {
            let plan = try SweepText.plan(target)
            (record, folder) = (plan.record, plan.directory)
        }
        let files = try SweepText.collect(record, into: folder)
        print((try? String(contentsOfFile: folder + "/table.md", encoding: .utf8)) ?? "", terminator: "")
        print("results: " + files.joined(separator: ", "))
    }
}
