"""The main window: docks, actions, menus and file handling (open, save, recent, autosave)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QByteArray, QRect, QSettings, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QGuiApplication,
    QKeySequence,
    QShowEvent,
    QUndoCommand,
    QUndoGroup,
)
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QUndoView,
    QVBoxLayout,
    QWidget,
)

from workbench.graph import Graph
from workbench.project import Project

from .blocks_ui import BlockActions
from .canvas.editor import CanvasEditor
from .canvas.reading import ReadingActions
from .canvas.scene import GraphScene
from .canvas.view import GraphView
from .compare import compare_with_dialog
from .compress import compress_dialog
from .cost_view import CostView
from .diagram_export import export_diagram_dialog
from .document import Document
from .editors import commit_focused_field
from .exchange import ExchangeMixin
from .explain import ExplainView
from .files import FilesMixin
from .inspector import Inspector, Prompt, ask_text
from .palette import Palette
from .problems import ProblemsPanel
from .recovery import RecoveryMixin
from .runs_panel import RunsPanel
from .setup_panel import SetupPanel
from .steady import hold_still
from .style import apply_theme, icon
from .sweep_dock import SweepDock
from .training_panel import TrainingPanel
from .wheel import guard_wheel

APP_NAME = "Neural Workbench"
AUTOSAVE_MS = 60_000
#: bump when docks are added or renamed: a window state saved by another layout is ignored
LAYOUT_VERSION = 3

#: ask(title, text, buttons, labels=None) -> the button chosen; ``labels`` renames buttons
#: (e.g. Abort -> "Stop the run"); replaced in tests
Asker = Callable[..., QMessageBox.StandardButton]


class MainWindow(FilesMixin, ExchangeMixin, RecoveryMixin, QMainWindow):
    """The editor window.  ``ask`` shows questions and errors (a QMessageBox by default);
    ``prompt`` asks for a line of text (a QInputDialog by default)."""

    def __init__(self, ask: Asker | None = None, parent: QWidget | None = None, prompt: Prompt | None = None) -> None:
        super().__init__(parent)
        self.ask: Asker = ask or self._message_box
        self.prompt: Prompt = prompt or (lambda title, label, default, choices: ask_text(self, title, label,
                                                                                          default, choices))
        self.settings = QSettings()
        self.setWindowIcon(icon("app"))
        self._shown_once = False
        self._layout_restored = False
        self.setDockOptions(QMainWindow.DockOption.AllowTabbedDocks | QMainWindow.DockOption.AllowNestedDocks)
        self.setAcceptDrops(True)  # a project or ONNX file dropped on the window opens (ui.files)
        self.doc = Document(Project())
        self.scene = GraphScene(self.doc)
        self.view = GraphView(self.scene)
        self.editor = CanvasEditor(self.view, self)
        self.palette = Palette()
        self.inspector = Inspector()
        self.problems = ProblemsPanel()
        self.setup = SetupPanel()
        self.training = TrainingPanel()
        self.runs = RunsPanel()
        self.sweep = SweepDock()
        self.explain = ExplainView()
        self.undo_group = QUndoGroup(self)  # undo/redo actions follow the active document's stack
        self.undo_group.addStack(self.doc.undo_stack)
        self.undo_group.setActiveStack(self.doc.undo_stack)
        self.history = QUndoView(self.undo_group)
        self.history.setEmptyLabel("<opened>")
        self._make_docks()
        self._make_actions()
        self.blocks = BlockActions(self)
        self.costs = CostView(self)  # View > Cost Bars; the Summary's cost columns follow its batch
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.blocks.bar)
        column.addWidget(self.view, 1)
        central.setFocusProxy(self.view)  # keyboard focus starts on the canvas, not the bar or a dock
        self.setCentralWidget(central)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self.blocks.show_canvas_menu)
        self.palette.blockAction.connect(self.blocks.palette_action)
        self.inspector.prompt = self.prompt
        self.inspector.openBlock.connect(lambda nid: self.blocks.open_block(nid))
        self.inspector.message.connect(self.show_message)
        self._make_menus()
        self._make_status_bar()
        self.palette.activated.connect(lambda layer: self.editor.add_layer(layer))
        self.editor.message.connect(self.show_message)
        self.problems.nodeActivated.connect(self.go_to_node)
        self._autosave = QTimer(self)
        self._autosave.setInterval(AUTOSAVE_MS)
        self._autosave.timeout.connect(self.autosave)
        self._autosave.start()
        self._bind_document()
        self._sync_graph_combo()
        self.resize(1400, 860)
        self._restore_layout()

    # ------------------------------------------------------------------ construction
    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _make_docks(self) -> None:
        self.palette_dock = self._dock("Layers", "paletteDock", self.palette, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.inspector_dock = self._dock("Inspector", "inspectorDock", self.inspector,
                                         Qt.DockWidgetArea.RightDockWidgetArea)
        self.problems_dock = self._dock("Problems and summary", "problemsDock", self.problems,
                                        Qt.DockWidgetArea.BottomDockWidgetArea)
        self.history_dock = self._dock("History", "historyDock", self.history, Qt.DockWidgetArea.BottomDockWidgetArea)
        # the dashboard scrolls rather than forcing its full height on every bottom dock (they share one area)
        training_scroll = QScrollArea()
        training_scroll.setWidget(self.training)
        training_scroll.setWidgetResizable(True)
        training_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.training_dock = self._dock("Training", "trainingDock", training_scroll,
                                        Qt.DockWidgetArea.BottomDockWidgetArea)
        self.runs_dock = self._dock("Runs", "runsDock", self.runs, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.setup_dock = self._dock("Data and training set-up", "setupDock", self.setup,
                                     Qt.DockWidgetArea.RightDockWidgetArea)
        self.explain_dock = self._dock("Explain", "explainDock", self.explain, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.sweep_dock = self._dock("Sweep", "sweepDock", self.sweep, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.sweep.message.connect(self.show_message)
        for dock in (self.training_dock, self.runs_dock, self.sweep_dock, self.explain_dock, self.history_dock):
            self.tabifyDockWidget(self.problems_dock, dock)
        self.setup_dock.hide()  # tabified once the window is shown (see showEvent)
        self.training.runFinished.connect(lambda _d: self.runs.refresh())
        self.training.message.connect(self.show_message)
        self.runs.resumeRequested.connect(self._resume_run)
        self.runs.showRequested.connect(self.training.show_run)
        self.runs.message.connect(self.show_message)
        self.training.runFinished.connect(self.explain.run_finished)
        self.training.confusionCellClicked.connect(self._explain_cell)
        self.explain.message.connect(self.show_message)

    def showEvent(self, event: QShowEvent) -> None:
        # sizes and current tabs are set once the layout exists (before that Qt leaves stray tab bars)
        if not self._shown_once:
            self._shown_once = True
            self.view.setFocus(Qt.FocusReason.OtherFocusReason)
            if not self._layout_restored:
                self.setup_dock.show()
                self.tabifyDockWidget(self.inspector_dock, self.setup_dock)
            self.problems_dock.raise_()
            self.inspector_dock.raise_()
            if not self._layout_restored:
                self._default_dock_sizes()
                # once more after the first layout pass: sizes set before it are only a hint
                QTimer.singleShot(0, self._default_dock_sizes)
        super().showEvent(event)

    def _default_dock_sizes(self) -> None:
        """The first-run layout: a canvas about three times as tall as the bottom docks."""
        self.resizeDocks([self.palette_dock, self.inspector_dock], [240, 320], Qt.Orientation.Horizontal)
        self.resizeDocks([self.problems_dock], [max(160, self.height() // 4)], Qt.Orientation.Vertical)

    def _action(self, text: str, slot: Callable[[], object], shortcut: QKeySequence | str | None = None,
                icon_name: str | None = None, checkable: bool = False) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut) if isinstance(shortcut, str) else shortcut)
        if icon_name:
            a.setIcon(icon(icon_name))
        a.setCheckable(checkable)
        a.triggered.connect(lambda checked=False: slot())
        return a

    def _make_actions(self) -> None:
        K = QKeySequence.StandardKey
        self.act_new = self._action("&New", self.new_project, QKeySequence(K.New))
        self.act_open = self._action("&Open…", self.open_dialog, QKeySequence(K.Open))
        self.act_save = self._action("&Save", self.save, QKeySequence(K.Save))
        self.act_save_as = self._action("Save &As…", self.save_as, QKeySequence(K.SaveAs))
        self.act_quit = self._action("&Quit", self.close, QKeySequence(K.Quit))
        self.act_undo = self.undo_group.createUndoAction(self, "&Undo")
        self.act_undo.setShortcut(QKeySequence(K.Undo))
        self.act_redo = self.undo_group.createRedoAction(self, "&Redo")
        self.act_redo.setShortcut(QKeySequence(K.Redo))
        self.act_cut = self._action("Cu&t", self.editor.cut, QKeySequence(K.Cut))
        self.act_copy = self._action("&Copy", self.editor.copy, QKeySequence(K.Copy))
        self.act_paste = self._action("&Paste", self.editor.paste, QKeySequence(K.Paste))
        self.act_duplicate = self._action("D&uplicate", self.editor.duplicate, "Ctrl+D")
        self.act_delete = self._action("&Delete", self.editor.delete_selection)
        self.act_delete.setShortcuts([QKeySequence(K.Delete), QKeySequence(Qt.Key.Key_Backspace)])
        self.act_select_all = self._action("Select &All", self.editor.select_all, QKeySequence(K.SelectAll))
        self.act_rename = self._action("Re&name", self.editor.start_rename, "F2")
        self.act_zoom_in = self._action("Zoom &In", lambda: self.view.zoom_by(1.25), QKeySequence(K.ZoomIn))
        self.act_zoom_in.setShortcuts([QKeySequence(K.ZoomIn), QKeySequence("Ctrl+=")])
        self.act_zoom_out = self._action("Zoom &Out", lambda: self.view.zoom_by(0.8), QKeySequence(K.ZoomOut))
        self.act_fit = self._action("&Fit to View", self.view.fit, "Ctrl+0")
        self.act_grid = self._action("Show &Grid", self._toggle_grid, checkable=True)
        self.act_grid.setChecked(True)
        self.act_snap = self._action("&Snap to Grid", self._toggle_snap, checkable=True)
        self.act_snap.setChecked(True)
        self.act_layout_tb = self._action("Auto-layout &Top to Bottom", lambda: self.editor.auto_layout("TB"),
                                          "Ctrl+L")
        self.act_layout_lr = self._action("Auto-layout &Left to Right", lambda: self.editor.auto_layout("LR"),
                                          "Ctrl+Shift+L")
        self.reading = ReadingActions(self)  # find, overview map, the layout button, expand all blocks
        for a in (self.act_cut, self.act_copy, self.act_paste, self.act_duplicate, self.act_delete,
                  self.act_select_all, self.act_rename):
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.view.addAction(a)

    def _make_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_new)
        self.templates_menu = m.addMenu("New from &Template")
        from workbench.templates import starting_points

        # built in code, so every install has them (not files of the source checkout)
        for i, (template_id, (title, make)) in enumerate(starting_points().items()):
            if i and template_id in ("lenet5",):
                self.templates_menu.addSeparator()  # the architectures after the samples
            action = self.templates_menu.addAction(title, lambda m=make: self.new_from_template(m))
            action.setObjectName(f"template_{template_id}")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        m.addSeparator()
        m.addAction(self.act_save)
        m.addAction(self.act_save_as)
        m.addSeparator()
        m.addAction("&Import ONNX…", self.import_onnx_dialog)
        self.act_compare = m.addAction("&Compare With…", lambda: compare_with_dialog(self))
        m.addAction("Export &ONNX…", self.export_onnx_dialog)
        m.addAction("Export &PyTorch Source…", self.export_python_dialog)
        self.act_export_diagram = m.addAction("Export &Diagram…", lambda: export_diagram_dialog(self))
        m.addSeparator()
        m.addAction(self.blocks.act_import)
        m.addAction(self.blocks.act_export)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Edit")
        for a in (self.act_undo, self.act_redo, None, self.act_cut, self.act_copy, self.act_paste,
                  self.act_duplicate, self.act_delete, None, self.act_select_all, self.act_rename, None,
                  *self.blocks.actions()):
            m.addSeparator() if a is None else m.addAction(a)
        m = mb.addMenu("&View")
        for a in (self.act_zoom_in, self.act_zoom_out, self.act_fit, None, self.act_grid, self.act_snap, None,
                  self.act_layout_tb, self.act_layout_lr, None):
            m.addSeparator() if a is None else m.addAction(a)
        self.reading.add_to_menu(m)
        m.addMenu(self.costs.menu)
        m.addSeparator()
        for dock in (self.palette_dock, self.inspector_dock, self.setup_dock, self.problems_dock, self.training_dock,
                     self.runs_dock, self.sweep_dock, self.explain_dock, self.history_dock):
            m.addAction(dock.toggleViewAction())
        theme_menu = m.addMenu("&Theme")
        group = QActionGroup(self)
        current = self.settings.value("theme", "system")
        for name in ("system", "light", "dark"):
            a = theme_menu.addAction(name.capitalize(), lambda n=name: self.set_theme(n))
            a.setCheckable(True)
            a.setChecked(name == current)
            group.addAction(a)
        m = self.help_menu = mb.addMenu("&Help")
        m.addAction("&About", self._about)
        tb = self.addToolBar("Main")
        tb.setObjectName("mainToolbar")
        self.act_train = self._action("&Train", self._train, "F5")
        self.act_stop = self._action("&Stop Training", self.training.stop, "Shift+F5")
        run_menu = QMenu("&Run", self)
        mb.insertMenu(self.help_menu.menuAction(), run_menu)
        run_menu.addAction(self.act_train)
        run_menu.addAction(self.act_stop)
        self.act_explain = run_menu.addAction("&Explain Predictions…", self.show_explain)
        self.act_compress = run_menu.addAction("&Compress…", lambda: compress_dialog(self))
        for a in (self.act_new, self.act_open, self.act_save, None, self.act_undo, self.act_redo, None,
                  self.act_fit, self.reading.layout, None, self.act_train, self.act_stop):
            if a is self.reading.layout:
                self.reading.add_to_toolbar(tb)
            else:
                tb.addSeparator() if a is None else tb.addAction(a)
        tb.addSeparator()
        self.graph_combo = QComboBox()
        self.graph_combo.setToolTip("Which graph of the project is on the canvas (a GAN has two)")
        self.graph_combo.currentIndexChanged.connect(lambda _i: self.show_graph(self.graph_combo.currentData()))
        self.graph_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        guard_wheel(self.graph_combo)  # scrolling over the toolbar must not switch graphs
        self.graph_label_action = tb.addWidget(QLabel(" Graph: "))
        self.graph_combo_action = tb.addWidget(self.graph_combo)  # a toolbar widget is shown through its action
        run_menu.addSeparator()
        run_menu.addAction("Add &Discriminator Graph (GAN)", self.add_discriminator)

    def _make_status_bar(self) -> None:
        self.params_label = QLabel()
        self.zoom_label = QLabel()
        self.statusBar().addPermanentWidget(self.params_label)
        self.statusBar().addPermanentWidget(self.zoom_label)
        self.view.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        self.zoom_label.setText("100%")

    # ------------------------------------------------------------------ document binding
    def _bind_scene(self) -> None:
        self.scene.message.connect(self.show_message)
        self.scene.renameRequested.connect(self.editor.start_rename)
        self.scene.openRequested.connect(self.blocks.open_block)
        self.scene.selectionChanged.connect(self._selection_changed)
        self.costs.bind()

    def _bind_document(self) -> None:
        self._bind_scene()
        self.blocks.bind(self.doc)
        self.inspector.set_document(self.doc)
        self.problems.set_document(self.doc)
        self.setup.set_document(self.doc)
        self.training.set_document(self.doc)
        self.runs.set_document(self.doc)
        self.sweep.set_document(self.doc)
        self.explain.set_document(self.doc)
        self.doc.changed.connect(self._doc_changed)
        self.doc.undo_stack.cleanChanged.connect(self._clean_changed)
        self._doc_changed()

    def show_graph(self, role: str) -> None:
        """Put another graph of the project on the canvas: the model, the discriminator, or
        the inside of a block (``block:<id>``)."""
        if role == self.doc.role or not self.doc.has_role(role):
            return
        if not role.startswith("block:"):
            self.blocks.trail = []
        old_scene = self.scene
        old_scene.detach()
        self.doc.set_role(role)
        self.scene = GraphScene(self.doc)
        self.scene.snap_to_grid = self.act_snap.isChecked()
        self.scene.show_grid = self.act_grid.isChecked()
        self.view.setScene(self.scene)
        self._bind_scene()
        self.inspector.show_nodes([])
        self.doc.refresh()
        self.view.fit()
        old_scene.deleteLater()
        self._sync_graph_combo()
        self.blocks.update_bar()

    def add_discriminator(self) -> None:
        """Give the project a discriminator graph (for the adversarial task), one undo step."""
        if "discriminator" not in self.doc.project.graphs:
            self.doc.undo_stack.push(AddGraphCommand(self, "discriminator"))
        self.show_graph("discriminator")

    def _sync_graph_combo(self) -> None:
        self.graph_combo.blockSignals(True)
        self.graph_combo.clear()
        roles = self.doc.roles() + ([self.doc.role] if self.doc.block_id is not None else [])
        for role in roles:
            title = self.blocks.role_title(role)
            self.graph_combo.addItem(f"Block: {title}" if role.startswith("block:") else title, role)
        self.graph_combo.setCurrentIndex(max(0, self.graph_combo.findData(self.doc.role)))
        for a in (self.graph_combo_action, self.graph_label_action):
            a.setVisible(len(roles) > 1)
        self.graph_combo.setVisible(len(roles) > 1)  # at once (the toolbar applies its actions' visibility later)
        self.graph_combo.blockSignals(False)

    def set_document(self, doc: Document) -> None:
        """Replace the open document (after New/Open); the old one is discarded."""
        old_doc, old_scene = self.doc, self.scene
        old_scene.detach()
        self.doc = doc
        self.scene = GraphScene(doc)
        self.view.setScene(self.scene)
        self.undo_group.addStack(doc.undo_stack)
        self.undo_group.setActiveStack(doc.undo_stack)
        self.undo_group.removeStack(old_doc.undo_stack)
        self.scene.snap_to_grid = self.act_snap.isChecked()
        self.scene.show_grid = self.act_grid.isChecked()
        self._bind_document()
        self.view.update_scene_rect()
        self.view.fit()
        self._sync_graph_combo()
        old_doc.close()
        old_doc.deleteLater()
        old_scene.deleteLater()

    def _doc_changed(self, _ids: object = None) -> None:
        where = " in this block (for its example input)" if self.doc.block_id is not None else ""
        from workbench.node_training import split_text

        split = split_text(self.doc.graph, self.doc.shapes)  # transfer learning: how many are frozen
        self.params_label.setText(f"{self.doc.shapes.total_params():,} parameters{split}{where}")
        self._update_title()

    def _clean_changed(self, _clean: bool) -> None:
        self._update_title()

    def _update_title(self) -> None:
        self.setWindowTitle(f"{self.doc.display_name()}[*] — {APP_NAME}")
        self.setWindowModified(self.doc.modified)
        self.training.refresh_title()

    def _selection_changed(self) -> None:
        try:
            selected = self.scene.selected_node_ids()
            self.inspector.show_nodes(selected)
            if selected and self.inspector_dock.toggleViewAction().isChecked():
                self.inspector_dock.raise_()  # it shares a tab with the set-up: bring it forward
            self.explain.canvas_selection(self.scene.selected_node_ids())
        except RuntimeError:  # scene already deleted during a document switch
            pass

    def show_training(self) -> None:
        """Bring the dashboard forward, tall enough for its plots; the canvas keeps still meanwhile."""
        hold_still(self.view)
        self.training_dock.show()
        self.training_dock.raise_()
        if self.training_dock.height() < self.height() * 0.4:
            self.resizeDocks([self.training_dock], [int(self.height() * 0.45)], Qt.Orientation.Vertical)

    def show_explain(self) -> None:
        """Bring the Explain view forward, as tall as the dashboard gets."""
        hold_still(self.view)
        self.explain_dock.show()
        self.explain_dock.raise_()
        if self.explain_dock.height() < self.height() * 0.4:
            self.resizeDocks([self.explain_dock], [int(self.height() * 0.45)], Qt.Orientation.Vertical)

    def _explain_cell(self, true: int, predicted: int) -> None:
        """A confusion-matrix cell: its samples, explained with the run's weights."""
        self.show_explain()
        matrix = self.training.results_plot.matrix
        count = int(matrix[true, predicted]) if matrix is not None else None
        self.explain.show_cell(true, predicted, self.training.run_dir, count)

    def _train(self) -> None:
        commit_focused_field()  # F5 while typing the learning rate trains with what was typed
        self.show_training()
        if not self.training.start():
            self.show_message(self.training.status.text())

    def _resume_run(self, checkpoint: str) -> None:
        self.show_training()
        self.training.start(resume=checkpoint)

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def go_to_node(self, node_id: str) -> None:
        self.scene.select_nodes([node_id])
        self.view.center_on_node(node_id)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.maybe_save():
            self.training.shutdown()
            self.explain.shutdown()
            self.settings.setValue("geometry", self.saveGeometry())
            self.settings.setValue("windowState", self.saveState(LAYOUT_VERSION))
            self._autosave.stop()
            # the document is finished: its undo stack, destroyed later (at exit), clears itself and
            # would announce that to this window's views (QUndoStack already deleted)
            self.doc.close()
            event.accept()
        else:
            event.ignore()

    # ------------------------------------------------------------------ layout, theme
    def fit_to_screen(self, available: QRect | None = None) -> None:
        """On a first start (no saved geometry), make the window fit the screen it opens on, centred:
        the default size is larger than a 1280x800 screen, which cut off the Inspector and the status
        bar.  ``available``: the screen's free area (default: the primary screen's)."""
        if self._geometry_restored:
            return
        if available is None:
            screen = QGuiApplication.primaryScreen()
            if screen is None:
                return
            available = screen.availableGeometry()
        # the frame (title bar, borders) comes on top of the client size the window is resized to
        margin_w = max(0, self.frameGeometry().width() - self.width())
        margin_h = max(0, self.frameGeometry().height() - self.height())
        width = min(self.width(), available.width() - margin_w)
        height = min(self.height(), available.height() - margin_h)
        self.resize(width, height)
        self.move(available.x() + (available.width() - width - margin_w) // 2,
                  available.y() + (available.height() - height - margin_h) // 2)

    def _restore_layout(self) -> None:
        geometry, state = self.settings.value("geometry"), self.settings.value("windowState")
        self._geometry_restored = isinstance(geometry, QByteArray) and self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self._layout_restored = self.restoreState(state, LAYOUT_VERSION)

    def set_theme(self, theme: str) -> None:
        self.settings.setValue("theme", theme)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, theme)
        from .style import canvas_colors

        self.scene.colors = canvas_colors()
        for item in self.scene.nodes.values():
            item.colors = self.scene.colors
        for e in self.scene.edges.values():
            e.colors = self.scene.colors
            e.set_error(e.error, e.toolTip())
        self.scene.update()

    def _toggle_grid(self) -> None:
        self.scene.show_grid = self.act_grid.isChecked()
        self.scene.update()

    def _toggle_snap(self) -> None:
        self.scene.snap_to_grid = self.act_snap.isChecked()

    # ------------------------------------------------------------------ misc
    def _about(self) -> None:
        self.ask(f"About {APP_NAME}", f"{APP_NAME}: design, train and export neural networks.",
                 QMessageBox.StandardButton.Ok)

    def _message_box(self, title: str, text: str, buttons: QMessageBox.StandardButton,
                     labels: dict[QMessageBox.StandardButton, str] | None = None) -> QMessageBox.StandardButton:
        box = QMessageBox(self)
        box.setWindowTitle(title)
        box.setText(text)
        box.setStandardButtons(buttons)
        for which, label in (labels or {}).items():
            button = box.button(which)
            if button is not None:
                button.setText(label)
        box.setIcon(QMessageBox.Icon.Question if buttons != QMessageBox.StandardButton.Ok
                    else QMessageBox.Icon.Warning)
        return QMessageBox.StandardButton(box.exec())


class AddGraphCommand(QUndoCommand):
    """Add an empty graph under a role (an Input and an Output to start from)."""

    def __init__(self, window: MainWindow, role: str) -> None:
        super().__init__(f"Add {role} graph")
        from workbench.builder import GraphBuilder

        b = GraphBuilder(Graph(window.doc.project.blocks))
        b.output(b.input((1, 8, 8), name="image"), name="logit")
        self.window, self.role, self.graph = window, role, b.auto_layout()

    def redo(self) -> None:
        self.window.doc.project.graphs[self.role] = self.graph
        self.window._sync_graph_combo()

    def undo(self) -> None:
        if self.window.doc.role == self.role:
            self.window.show_graph("main")
        del self.window.doc.project.graphs[self.role]
        self.window._sync_graph_combo()
